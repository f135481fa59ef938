// Head output (OV) read by a later neuron's input (O composition).
// params: $rows [{neuron, head, kind, weight, rank}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MATCH (h:Head {key: r.head})
MERGE (h)-[e:HEAD_COMPOSES {kind: r.kind}]->(n)
SET e.weight = r.weight, e.rank = r.rank
