// Dataset contexts neurons activate on, by kind (max | min | random | quantile, with its interval), in rank order after a
// rank cursor, with the neuron's per-token activations and the pivot position, plus how many
// contexts of that kind the neuron has. Batched over a page of neurons and over the pages asked
// for (e.g. the max and the random examples of a neuron page in one round trip): every
// (key, page) pair is answered.
// params: $keys [string], $pages [{kind, after_rank, limit}]
UNWIND $keys AS k
MATCH (n:Neuron {key: k})
UNWIND $pages AS p
MATCH (n)-[a:ACTIVATES_ON {kind: p.kind}]->(x:Example)
WITH k, p, a, x ORDER BY a.rank
WITH k, p, count(a) AS total,
     collect(CASE WHEN a.rank > p.after_rank THEN {rank: a.rank, activations: a.activations,
             max_activation: a.max_activation, min_activation: a.min_activation, pivot: a.pivot,
             bin: a.bin, bin_low: a.bin_low, bin_high: a.bin_high, bin_count: a.bin_count, example: x} END) AS examples
RETURN k AS key, p.kind AS kind, p.after_rank AS after_rank, p.limit AS limit, total, examples[..p.limit] AS examples
