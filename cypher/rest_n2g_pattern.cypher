// neuron2graph: a neuron's N2G pattern-graph nodes, each with the keys of the nodes it leads to.
// params: $key
MATCH (n:Neuron {key: $key})-[:HAS_PATTERN]->(p:PatternNode)
OPTIONAL MATCH (p)-[:PATTERN_NEXT]->(q:PatternNode)
RETURN p.key AS key, p.token AS token, p.depth AS depth, p.role AS role,
       p.activation AS activation, p.importance AS importance, p.is_end AS is_end, collect(q.key) AS next
ORDER BY key
