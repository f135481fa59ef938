// The neurons of a model (optionally one layer) with the highest (or lowest) value of a stat.
// Neurons come as a summary projection (key, position, interest, role); the API loads the rest on demand.
// params: $model, $layer (int or null), $stat (property name), $descending (bool), $limit
MATCH (n:Neuron)
WHERE n.model = $model AND ($layer IS NULL OR n.layer = $layer) AND n[$stat] IS NOT NULL
WITH n, CASE WHEN $descending THEN -n[$stat] ELSE n[$stat] END AS sort_key
RETURN n {.key, .model, .layer, .index, .interest, .role, .community} AS n
ORDER BY sort_key, n.layer, n.index
LIMIT $limit
