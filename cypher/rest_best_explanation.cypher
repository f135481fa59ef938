// neuron_explainer: the neuron's best-scored explanation (unscored ones last).
// params: $key
MATCH (n:Neuron {key: $key})-[:EXPLAINED_BY]->(x:Explanation)
RETURN x.text AS explanation, x.score AS score, x.source AS source
ORDER BY CASE WHEN x.score IS NULL THEN 1 ELSE 0 END, x.score DESC, x.key
LIMIT 1
