// Does any neuron of the model have an N2G pattern graph? (neuron2graph services available)
// Pattern-node keys start with the neuron key, so the model's prefix finds them without a traversal.
// params: $prefix (the model name + '/')
MATCH (p:PatternNode)
WHERE p.key STARTS WITH $prefix
RETURN p.key AS key
LIMIT 1
