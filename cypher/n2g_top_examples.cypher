// A model's top-activating examples per neuron (ACTIVATES_ON kind 'max', rank < $top_k),
// with token ids where the example stores them, for fitting N2G.
// params: $model, $top_k
MATCH (n:Neuron {model: $model})-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example)
WHERE e.rank < $top_k
RETURN n.layer AS layer, n.index AS index, x.key AS example, x.tokens AS tokens,
       x.token_ids AS token_ids, e.activations AS activations, e.pivot AS pivot, e.rank AS rank
ORDER BY layer, index, rank
