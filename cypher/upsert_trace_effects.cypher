// The direct effects of an attribution graph, source -> target.
// params: $rows [{src, dst, weight}]
UNWIND $rows AS row
MATCH (a:TraceNode {key: row.src})
MATCH (b:TraceNode {key: row.dst})
MERGE (a)-[e:EFFECT]->(b)
SET e.weight = row.weight
