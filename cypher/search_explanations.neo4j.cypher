// Full-text search over explanation texts (Neo4j full-text index `explanation_text`),
// with the neuron each explains.
// params: $q, $model (string or null), $limit
CALL db.index.fulltext.queryNodes('explanation_text', $q) YIELD node, score
MATCH (n:Neuron)-[:EXPLAINED_BY]->(node)
WHERE $model IS NULL OR n.model = $model
RETURN node AS explanation, score, n AS neuron
ORDER BY score DESC
LIMIT $limit
