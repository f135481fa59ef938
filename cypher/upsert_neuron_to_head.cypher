// Neuron output read by a later head's query, key or value (Q, K, V composition).
// params: $rows [{neuron, head, kind, weight, rank}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MATCH (h:Head {key: r.head})
MERGE (n)-[e:HEAD_COMPOSES {kind: r.kind}]->(h)
SET e.weight = r.weight, e.rank = r.rank
