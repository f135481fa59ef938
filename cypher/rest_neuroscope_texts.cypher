// Neuroscope neuron page: the neuron's max-activating contexts in rank order.
// params: $key, $limit
MATCH (n:Neuron {key: $key})-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example)
RETURN e.rank AS rank, e.activations AS activations, e.max_activation AS max_activation,
       e.min_activation AS min_activation, e.pivot AS pivot, x.tokens AS tokens,
       x.data_index AS data_index
ORDER BY rank
LIMIT $limit
