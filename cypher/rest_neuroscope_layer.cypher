// Neuroscope layer page: the layer's neurons with the largest activation range, largest first.
// Walks from the layer node (one layer's neurons) instead of filtering all the model's neurons.
// params: $key (layer key 'model/L{layer}'), $limit
MATCH (:Layer {key: $key})-[:HAS_NEURON]->(n:Neuron)
WITH n, n.max AS mx, n.min AS mn
WHERE mx IS NOT NULL OR mn IS NOT NULL
WITH n, abs(coalesce(mx, 0.0)) AS a, abs(coalesce(mn, 0.0)) AS b
RETURN n.layer AS layer, n.index AS neuron, CASE WHEN a >= b THEN a ELSE b END AS range
ORDER BY range DESC, neuron
LIMIT $limit
