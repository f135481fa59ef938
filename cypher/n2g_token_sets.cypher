// The activating and important token ids of every N2G pattern graph of a model.
// params: $model
MATCH (n:Neuron {model: $model})-[:HAS_PATTERN]->(:PatternNode)-[m:MATCHES]->(t:Token)
RETURN DISTINCT n.key AS neuron, m.role AS role, t.id AS token
