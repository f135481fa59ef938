// Does any neuron of the model have max-activating examples? (neuroscope service available)
// Starts from the model's examples (key prefix 'model/'), not from its tens of thousands of neurons.
// params: $prefix (the model name + '/')
MATCH (x:Example)
WHERE x.key STARTS WITH $prefix
MATCH (x)<-[:ACTIVATES_ON {kind: 'max'}]-(:Neuron)
RETURN x.key AS key
LIMIT 1
