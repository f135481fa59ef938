// Dataset contexts a neuron activates on, by kind (max | min | random), in rank order after a
// rank cursor, with the neuron's per-token activations and the pivot position, plus how many
// contexts of that kind the neuron has. Batched over a page of neurons.
// params: $keys [string], $kind, $after_rank, $limit
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[a:ACTIVATES_ON {kind: $kind}]->(x:Example)
WITH k, a, x ORDER BY a.rank
WITH k, count(a) AS total,
     collect(CASE WHEN a.rank > $after_rank THEN {rank: a.rank, activations: a.activations,
             max_activation: a.max_activation, min_activation: a.min_activation, pivot: a.pivot,
             example: x} END) AS examples
RETURN k AS key, total, examples[..$limit] AS examples
