// neuron2graph: neurons similar to this one by N2G token-set overlap (either direction), best first.
// params: $key, $limit
MATCH (n:Neuron {key: $key})-[e:SIMILAR]-(o:Neuron)
RETURN o.layer AS layer, o.index AS neuron, e.weight AS similarity
ORDER BY similarity DESC, layer, neuron
LIMIT $limit
