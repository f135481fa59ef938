// Activation-correlation neuron→neuron edges (Pearson over the corpus).
// params: $rows [{src, dst, weight, rank}]
UNWIND $rows AS r
MATCH (a:Neuron {key: r.src})
MATCH (b:Neuron {key: r.dst})
MERGE (a)-[e:CORRELATES {kind: 'pearson'}]->(b)
SET e.weight = r.weight, e.rank = r.rank
