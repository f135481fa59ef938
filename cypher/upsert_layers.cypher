// Create or update layers and attach them to their model. Idempotent.
// params: $rows [{key, model, layer, n_neurons}]
UNWIND $rows AS r
MATCH (m:Model {key: r.model})
MERGE (l:Layer {key: r.key})
SET l += r
MERGE (m)-[:HAS_LAYER]->(l)
