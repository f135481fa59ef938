// Remove the corpus-circuit topology props of a model's neurons (before a re-run, so neurons
// that left the analysed ATTRIBUTES_TO graph keep no stale role).
// params: $model
MATCH (n:Neuron {model: $model})
WHERE n.circuit_role IS NOT NULL OR n.circuit_community IS NOT NULL
REMOVE n.circuit_degree, n.circuit_strength, n.circuit_betweenness, n.circuit_community, n.circuit_participation,
       n.circuit_within_z, n.circuit_role
