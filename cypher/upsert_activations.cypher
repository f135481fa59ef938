// Link a neuron to a context it activates on: top-k max / min or a random sample, with the
// neuron's per-token activations over that context and the pivot (max or min) position.
// params: $rows [{neuron, example, kind, rank, activations, max_activation, min_activation, pivot}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MATCH (x:Example {key: r.example})
MERGE (n)-[e:ACTIVATES_ON {kind: r.kind, rank: r.rank}]->(x)
SET e.activations = r.activations, e.max_activation = r.max_activation,
    e.min_activation = r.min_activation, e.pivot = r.pivot
