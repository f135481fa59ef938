// Similar neurons by N2G token-set overlap (stored once per unordered pair, src < dst).
// params: $rows [{src, dst, weight}]
UNWIND $rows AS r
MATCH (a:Neuron {key: r.src})
MATCH (b:Neuron {key: r.dst})
MERGE (a)-[e:SIMILAR {kind: 'n2g'}]->(b)
SET e.weight = r.weight
