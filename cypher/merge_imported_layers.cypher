// Layers of an imported model, attached to it; n_neurons follows the model's d_mlp.
// params: $rows [{key, model, layer, n_neurons}]
UNWIND $rows AS r
MATCH (m:Model {key: r.model})
MERGE (l:Layer {key: r.key})
SET l.model = r.model, l.layer = r.layer, l.n_neurons = coalesce(m.d_mlp, r.n_neurons)
MERGE (m)-[:HAS_LAYER]->(l)
