// Imported N2G pattern-graph nodes (DeepDecipher neuron2graph): as upsert_pattern_nodes,
// plus the node's importance (activating nodes: normalised activation).
// params: $rows [{key, neuron, token, depth, role, activation, importance, is_end}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
MERGE (p:PatternNode {key: r.key})
SET p.token = r.token, p.depth = r.depth, p.role = r.role, p.activation = r.activation,
    p.importance = r.importance, p.is_end = r.is_end, p.neuron = r.neuron
MERGE (n)-[:HAS_PATTERN]->(p)
