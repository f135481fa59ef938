// Neuroscope model page: the model's neurons with the largest activation range
// (range = max(|max|, |min|) of the neuron's stored activation stats), largest first.
// params: $model, $limit
MATCH (n:Neuron {model: $model})
WITH n, coalesce(n.max, n.max_activation) AS mx, coalesce(n.min, n.min_activation) AS mn
WHERE mx IS NOT NULL OR mn IS NOT NULL
WITH n, abs(coalesce(mx, 0.0)) AS a, abs(coalesce(mn, 0.0)) AS b
RETURN n.layer AS layer, n.index AS neuron, CASE WHEN a >= b THEN a ELSE b END AS range
ORDER BY range DESC, layer, neuron
LIMIT $limit
