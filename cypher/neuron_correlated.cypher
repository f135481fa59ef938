// Neurons whose activations correlate with this neuron's (CORRELATES, either direction).
// Batched over a page of neurons; each neuron's edges sorted (weight desc, asc or |weight| desc),
// filtered by kind and minimum |weight|, at most $cap per neuron.
// Neighbours come as a summary projection (key, position, interest, role);
// the API loads a neighbour's full properties only when a query asks for them.
// params: $keys [string], $kinds [string] or null, $min_weight (float or null), $order ('weight' | 'asc' | 'abs'), $cap
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[e:CORRELATES]-(m:Neuron)
WHERE ($kinds IS NULL OR e.kind IN $kinds) AND ($min_weight IS NULL OR abs(e.weight) >= $min_weight)
WITH k, e, m, CASE $order WHEN 'abs' THEN -abs(e.weight) WHEN 'asc' THEN e.weight ELSE -e.weight END AS s
ORDER BY s
WITH k, collect({kind: e.kind, weight: e.weight, rank: e.rank, node: m {.key, .model, .layer, .index, .interest, .role, .community}})[..$cap] AS edges
RETURN k AS key, edges
