// N2G pattern-graph edges: from a node to the node one token further back in the context.
// params: $rows [{src, dst}]
UNWIND $rows AS r
MATCH (a:PatternNode {key: r.src})
MATCH (b:PatternNode {key: r.dst})
MERGE (a)-[:PATTERN_NEXT]->(b)
