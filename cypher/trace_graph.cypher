// One stored attribution graph: its nodes and the effects among them.
// params: $key
MATCH (t:Trace {key: $key})-[:HAS_NODE]->(n:TraceNode)
OPTIONAL MATCH (n)-[e:EFFECT]->(m:TraceNode)
RETURN n {.key, .kind, .position, .layer, .index, .token_id, .token, .activation, .influence} AS node,
       collect(CASE WHEN m IS NULL THEN null ELSE {target: m.key, weight: e.weight} END) AS effects
