// A model's neurons and whether N2G results are already stored for them (resume).
// params: $model
MATCH (n:Neuron {model: $model})
RETURN n.key AS key, n.layer AS layer, n.index AS index, n.n2g_nodes IS NOT NULL AS done
