// Every model in the graph with its neuron count.
// params:
MATCH (m:Model)
OPTIONAL MATCH (m)-[:HAS_LAYER]->(l:Layer)
WITH m, sum(coalesce(l.n_neurons, 0)) AS n_neurons, count(l) AS n_layers_stored
RETURN m, n_neurons, n_layers_stored
ORDER BY m.name
