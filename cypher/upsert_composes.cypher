// Weight-based neuron→neuron edges (in_in, in_out, out_in, out_out cosines; virtual weights).
// params: $rows [{src, dst, kind, weight, rank}]
UNWIND $rows AS r
MATCH (a:Neuron {key: r.src})
MATCH (b:Neuron {key: r.dst})
MERGE (a)-[e:COMPOSES {kind: r.kind}]->(b)
SET e.weight = r.weight, e.rank = r.rank
