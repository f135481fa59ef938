// Natural-language explanations of a neuron with their scores.
// params: $rows [{key, neuron, source, text, score, scores}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MERGE (x:Explanation {key: r.key})
SET x.source = r.source, x.text = r.text, x.score = r.score, x += r.scores
MERGE (n)-[:EXPLAINED_BY]->(x)
