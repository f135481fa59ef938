// Neuron↔token edges: input weight, output (direct logit) effect, mean activation on the token.
// params: $rows [{neuron, token, kind, weight, rank, count}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MATCH (t:Token {key: r.token})
MERGE (n)-[e:TOKEN_EFFECT {kind: r.kind}]->(t)
SET e.weight = r.weight, e.rank = r.rank, e.count = r.count
