// One batch of a model's weighted neuron→neuron edges for graph analytics: the edges leaving
// neurons of one layer with index in [$lo, $hi), of the relationship types in $types (any kind)
// or of the kinds in $kinds ('TYPE:kind', e.g. 'COMPOSES:virtual'), with |weight| >= $min_weight.
// params: $model, $layer, $lo, $hi, $types [string], $kinds [string], $min_weight, $limit
MATCH (a:Neuron {model: $model, layer: $layer})
WHERE a.index >= $lo AND a.index < $hi
MATCH (a)-[e:COMPOSES|CORRELATES|SIMILAR]->(b:Neuron {model: $model})
WHERE (type(e) IN $types OR (type(e) + ':' + coalesce(e.kind, '')) IN $kinds)
  AND e.weight IS NOT NULL AND abs(e.weight) >= $min_weight
RETURN a.key AS src, b.key AS dst, e.weight AS weight
LIMIT $limit
