// One page of a model's neurons ordered by a stat (descending or ascending), then (layer, index),
// resumed after a keyset cursor (stat value, layer, index). Neurons without the stat are left out.
// Neurons come as a summary projection (key, position, interest, role, the stats a listing shows);
// the API loads the rest on demand.
// params: $model, $layer_min, $layer_max, $stat, $descending, $after_value, $after_layer, $after_index, $role, $community, $min, $max, $limit
MATCH (n:Neuron)
WHERE n.model = $model
  AND n.layer >= $layer_min AND n.layer <= $layer_max
  AND n[$stat] IS NOT NULL
  AND ($role IS NULL OR n.role = $role)
  AND ($community IS NULL OR n.community = $community)
  AND ($min IS NULL OR n[$stat] >= $min)
  AND ($max IS NULL OR n[$stat] <= $max)
WITH n, CASE WHEN $descending THEN -n[$stat] ELSE n[$stat] END AS v
WHERE $after_value IS NULL OR v > $after_value
   OR (v = $after_value AND (n.layer > $after_layer OR (n.layer = $after_layer AND n.index > $after_index)))
RETURN n {.key, .model, .layer, .index, .interest, .role, .community, .mean, .var, .skew, .kurt, .frac_active, .max, .min,
          .quantiles, .quantile_levels} AS n, v
ORDER BY v, n.layer, n.index
LIMIT $limit
