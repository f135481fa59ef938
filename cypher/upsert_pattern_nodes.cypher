// N2G pattern-graph nodes of a neuron: token, depth from the activating token, role
// (activating | important | ignore), terminal normalised activation.
// params: $rows [{key, neuron, token, token_key, depth, role, activation, is_end}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MERGE (p:PatternNode {key: r.key})
SET p.token = r.token, p.depth = r.depth, p.role = r.role, p.activation = r.activation,
    p.is_end = r.is_end, p.neuron = r.neuron
MERGE (n)-[:HAS_PATTERN]->(p)
