// The top-activating examples (ACTIVATES_ON kind 'max', rank < $top_k) of the neurons in
// $keys, with token ids where the example stores them, for fitting N2G on a few neurons
// without reading the whole model's examples.
// params: $keys [string], $top_k
UNWIND $keys AS k
MATCH (n:Neuron {key: k})-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example)
WHERE e.rank < $top_k
RETURN n.layer AS layer, n.index AS index, x.key AS example, x.tokens AS tokens,
       x.token_ids AS token_ids, e.activations AS activations, e.pivot AS pivot, e.rank AS rank
ORDER BY layer, index, rank
