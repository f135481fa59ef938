// One batch of a model's weighted neuron→neuron edges for graph analytics: the edges leaving
// the neurons in $keys (key lookups, so a batch costs what it returns), of the relationship
// types in $types (any kind) or of the kinds in $kinds ('TYPE:kind', e.g. 'COMPOSES:virtual'),
// with |weight| >= $min_weight. No filter on the far end: edges never leave their model, and a
// filter there lets FalkorDB plan a scan of every neuron of the model per key.
// params: $keys [string], $types [string], $kinds [string], $min_weight, $limit
UNWIND $keys AS k
MATCH (a:Neuron {key: k})-[e:COMPOSES|CORRELATES|SIMILAR|ATTRIBUTES_TO]->(b:Neuron)
WHERE (type(e) IN $types OR (type(e) + ':' + coalesce(e.kind, '')) IN $kinds)
  AND e.weight IS NOT NULL AND abs(e.weight) >= $min_weight
RETURN a.key AS src, b.key AS dst, e.weight AS weight
LIMIT $limit
