// Dataset contexts a neuron activates on, by kind (max | min | random), in rank order after a
// rank cursor, with the neuron's per-token activations and the pivot position. Batched.
// params: $keys [string], $kind, $after_rank, $limit
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[a:ACTIVATES_ON {kind: $kind}]->(x:Example)
WHERE a.rank > $after_rank
WITH k, a, x ORDER BY a.rank
WITH k, collect({rank: a.rank, activations: a.activations, max_activation: a.max_activation,
                 min_activation: a.min_activation, pivot: a.pivot, example: x})[..$limit] AS examples
RETURN k AS key, examples
