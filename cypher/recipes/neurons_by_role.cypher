// Question: which neurons play this topological role (after `neurograph topology` or
// compute_topology: ultra_peripheral, peripheral, connector, kinless, provincial_hub,
// connector_hub, kinless_hub), most central first?
// params: $model, $role, $limit
MATCH (n:Neuron {model: $model})
WHERE n.role = $role
RETURN n.key AS neuron, n.layer AS layer, n.index AS index, n.community AS community,
       n.participation AS participation, n.within_z AS within_z, n.betweenness AS betweenness
ORDER BY n.betweenness DESC, neuron
LIMIT $limit
