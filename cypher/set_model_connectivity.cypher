// Record which connectivity kinds (composition, heads, tokens, correlation) a model has finished.
// params: $key, $kinds [string]
MATCH (m:Model {key: $key})
SET m.connectivity = $kinds
RETURN m.key AS key
