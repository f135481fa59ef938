// Question: which later neurons does this neuron write to most strongly through the residual
// stream (virtual weight W_out[l1,n1] · W_in[l2,n2], and the gate path for gated MLPs)?
// params: $key (neuron key 'model/layer/index'), $limit
MATCH (n:Neuron {key: $key})-[e:COMPOSES]->(d:Neuron)
WHERE e.kind IN ['virtual', 'gate_virtual']
RETURN d.key AS neuron, d.layer AS layer, d.index AS index, e.kind AS kind, e.weight AS weight
ORDER BY abs(e.weight) DESC, neuron
LIMIT $limit
