// Does any neuron of the model have an N2G pattern graph? (neuron2graph services available)
// params: $model
MATCH (n:Neuron {model: $model})-[:HAS_PATTERN]->(:PatternNode)
RETURN n.key AS key
LIMIT 1
