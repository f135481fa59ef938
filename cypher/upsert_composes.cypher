// Weight-based neuron→neuron edges (in_in, in_out, out_in, out_out cosines; virtual weights).
// An edge two lists select (a virtual weight in the writer's down list and the reader's up
// list) keeps the better (lower) rank: shards of a build may each write it, in any order.
// params: $rows [{src, dst, kind, weight, rank}]
UNWIND $rows AS r
MATCH (a:Neuron {key: r.src})
MATCH (b:Neuron {key: r.dst})
MERGE (a)-[e:COMPOSES {kind: r.kind}]->(b)
SET e.weight = r.weight,
    e.rank = CASE WHEN e.rank IS NULL OR r.rank < e.rank THEN r.rank ELSE e.rank END
