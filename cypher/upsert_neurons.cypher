// Create or update neurons (key, model, layer, index plus any property map) under their layer.
// params: $rows [{key, model, layer, index, layer_key, props: {…}}]
UNWIND $rows AS r
MATCH (l:Layer {key: r.layer_key})
MERGE (n:Neuron {key: r.key})
SET n.model = r.model, n.layer = r.layer, n.index = r.index
SET n += r.props
MERGE (l)-[:HAS_NEURON]->(n)
