// Does any neuron of the model have max-activating examples? (neuroscope service available)
// params: $model
MATCH (n:Neuron {model: $model})-[:ACTIVATES_ON {kind: 'max'}]->(:Example)
RETURN n.key AS key
LIMIT 1
