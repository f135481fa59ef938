// Imported top-k / random activation records of a neuron (Neuroscope texts, OpenAI records):
// as upsert_activations, plus where they came from and the quantile of a random sample.
// params: $rows [{neuron, example, kind, rank, activations, max_activation, min_activation, pivot, source, quantile}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MATCH (x:Example {key: r.example})
MERGE (n)-[e:ACTIVATES_ON {kind: r.kind, rank: r.rank}]->(x)
SET e.activations = r.activations, e.max_activation = r.max_activation,
    e.min_activation = r.min_activation, e.pivot = r.pivot, e.source = r.source,
    e.quantile = r.quantile
