// Link a neuron to a context it activates on: top-k max / min, a random sample, or a sample per
// interval of its activation range (kind 'quantile': bin, the interval [bin_low, bin_high] and
// bin_count, the contexts whose max falls in it; null for the other kinds), with the neuron's
// per-token activations over that context and the pivot (max or min) position.
// params: $rows [{neuron, example, kind, rank, activations, max_activation, min_activation, pivot,
//                 bin, bin_low, bin_high, bin_count}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MATCH (x:Example {key: r.example})
MERGE (n)-[e:ACTIVATES_ON {kind: r.kind, rank: r.rank}]->(x)
SET e.activations = r.activations, e.max_activation = r.max_activation,
    e.min_activation = r.min_activation, e.pivot = r.pivot, e.bin = r.bin, e.bin_low = r.bin_low,
    e.bin_high = r.bin_high, e.bin_count = r.bin_count
