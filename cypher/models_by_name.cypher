// Models by name (batched), with their neuron count.
// params: $names [string]
UNWIND $names AS name
MATCH (m:Model {key: name})
OPTIONAL MATCH (m)-[:HAS_LAYER]->(l:Layer)
WITH name, m, sum(coalesce(l.n_neurons, 0)) AS n_neurons, count(l) AS n_layers_stored
RETURN name, m, n_neurons, n_layers_stored
