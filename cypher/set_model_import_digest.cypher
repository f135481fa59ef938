// What the last import of a source into a model wrote, as a digest of its rows: an entry
// 'source=sha1' in the model's `import_digests`, replaced in place (order kept, so a re-run
// that writes the same rows leaves the model exactly as it was).
// params: $rows [{model, source, digest}]
UNWIND $rows AS r
MATCH (m:Model {key: r.model})
WITH m, r, coalesce(m.import_digests, []) AS old, r.source + '=' AS prefix
SET m.import_digests = CASE WHEN any(x IN old WHERE x STARTS WITH prefix)
                            THEN [x IN old | CASE WHEN x STARTS WITH prefix THEN prefix + r.digest ELSE x END]
                            ELSE old + [prefix + r.digest] END
