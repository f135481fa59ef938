// A neuron's N2G pattern graph: its nodes, the edges between them and the tokens they match
// (batched).
// params: $keys [string]
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[:HAS_PATTERN]->(p:PatternNode)
OPTIONAL MATCH (p)-[:PATTERN_NEXT]->(q:PatternNode)
OPTIONAL MATCH (p)-[mt:MATCHES]->(t:Token)
WITH k, p, collect(DISTINCT q.key) AS next, collect(DISTINCT {role: mt.role, token: t.key, text: t.text}) AS matches
RETURN k AS key, collect({node: p, next: next, matches: matches}) AS nodes
