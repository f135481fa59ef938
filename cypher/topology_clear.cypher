// Remove the topology props of a model's neurons (before a re-run, so neurons that left the
// analysed graph keep no stale role).
// params: $model
MATCH (n:Neuron {model: $model})
WHERE n.role IS NOT NULL OR n.community IS NOT NULL
REMOVE n.degree, n.strength, n.betweenness, n.community, n.participation, n.within_z, n.role
