// The digests of the last import of each source into a model ('source=sha1' entries).
// params: $model
MATCH (m:Model {key: $model})
RETURN m.import_digests AS digests
