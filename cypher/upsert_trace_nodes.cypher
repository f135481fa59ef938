// The nodes of an attribution graph: input tokens, neurons at positions, the target logit.
// params: $rows [{trace, key, kind, position, layer, index, token_id, token, activation, influence}]
UNWIND $rows AS row
MATCH (t:Trace {key: row.trace})
MERGE (n:TraceNode {key: row.key})
SET n.kind = row.kind, n.position = row.position, n.layer = row.layer, n.index = row.index,
    n.token_id = row.token_id, n.token = row.token, n.activation = row.activation, n.influence = row.influence
MERGE (t)-[:HAS_NODE]->(n)
