// One batch of a model's weighted neuron→neuron edges for graph analytics: the edges leaving
// neurons '{$prefix}{i}' for i in [$lo, $hi) (key lookups, so a batch costs what it returns),
// of the relationship types in $types (any kind) or of the kinds in $kinds ('TYPE:kind', e.g.
// 'COMPOSES:virtual'), with |weight| >= $min_weight, to neurons of the same model.
// params: $prefix (neuron key prefix 'model/layer/'), $model, $lo, $hi, $types [string], $kinds [string], $min_weight, $limit
UNWIND range($lo, $hi - 1) AS i
MATCH (a:Neuron {key: $prefix + toString(i)})
MATCH (a)-[e:COMPOSES|CORRELATES|SIMILAR]->(b:Neuron)
WHERE b.model = $model
  AND (type(e) IN $types OR (type(e) + ':' + coalesce(e.kind, '')) IN $kinds)
  AND e.weight IS NOT NULL AND abs(e.weight) >= $min_weight
RETURN a.key AS src, b.key AS dst, e.weight AS weight
LIMIT $limit
