// The top-activating examples (ACTIVATES_ON kind 'max', rank < $top_k) of the neurons in
// $keys, for fitting N2G on a few neurons without reading the whole model's examples. The
// examples' tokens come from n2g_example_tokens, once per example: neurons of a model share
// their top contexts (the demo's 45,700 neurons: 914k rows over 256 contexts).
// params: $keys [string], $top_k
UNWIND $keys AS k
MATCH (n:Neuron {key: k})-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example)
WHERE e.rank < $top_k
RETURN n.layer AS layer, n.index AS index, x.key AS example, e.activations AS activations,
       e.pivot AS pivot, e.rank AS rank
ORDER BY layer, index, rank
