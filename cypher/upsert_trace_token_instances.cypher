// Each token node (and the target logit) of an attribution graph is an instance of a Token.
// params: $rows [{node, token}]
UNWIND $rows AS row
MATCH (n:TraceNode {key: row.node})
MATCH (x:Token {key: row.token})
MERGE (n)-[:INSTANCE_OF]->(x)
