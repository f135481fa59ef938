// Which vocabulary token a pattern node matches, with its role (activating | important).
// params: $rows [{pattern, token, role}]
UNWIND $rows AS r
MATCH (p:PatternNode {key: r.pattern})
MATCH (t:Token {key: r.token})
MERGE (p)-[e:MATCHES {role: r.role}]->(t)
