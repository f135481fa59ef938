// Does any neuron of the model have an explanation? (neuron_explainer service available)
// Explanation keys start with the neuron key, so the model's prefix finds them without a traversal.
// params: $prefix (the model name + '/')
MATCH (x:Explanation)
WHERE x.key STARTS WITH $prefix
RETURN x.key AS key
LIMIT 1
