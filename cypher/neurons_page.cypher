// One page of a model's neurons in (layer, index) order, resumed after a keyset cursor
// (never OFFSET: a deep page costs what the first page costs). Optional filters.
// Neurons come as a summary projection (key, position, interest, role, the stats a listing shows);
// the API loads the rest on demand.
// params: $model, $layer_min, $layer_max, $after_layer, $after_index, $role, $community, $stat, $min, $max, $limit
MATCH (n:Neuron)
WHERE n.model = $model
  AND n.layer >= $layer_min AND n.layer <= $layer_max AND n.layer >= $after_layer
  AND (n.layer > $after_layer OR (n.layer = $after_layer AND n.index > $after_index))
  AND ($role IS NULL OR n.role = $role)
  AND ($community IS NULL OR n.community = $community)
  AND ($min IS NULL OR n[$stat] >= $min)
  AND ($max IS NULL OR n[$stat] <= $max)
// The page first, then its projection (not every remaining neuron's); the cursor's layer bounds
// the index scan.
WITH n ORDER BY n.layer, n.index LIMIT $limit
RETURN n {.key, .model, .layer, .index, .interest, .role, .community, .mean, .var, .skew, .kurt, .frac_active, .max, .min,
          .quantiles, .quantile_levels} AS n
