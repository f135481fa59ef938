// Question: how does neuron $src reach neuron $dst in two steps of weight composition, and
// through which middle neurons? Paths are scored by the product of the two edge weights.
// params: $src (neuron key), $dst (neuron key), $limit
MATCH (a:Neuron {key: $src})-[e1:COMPOSES]->(m:Neuron)-[e2:COMPOSES]->(b:Neuron {key: $dst})
RETURN m.key AS via, e1.kind AS first_kind, e1.weight AS first_weight,
       e2.kind AS second_kind, e2.weight AS second_weight, e1.weight * e2.weight AS score
ORDER BY abs(score) DESC, via
LIMIT $limit
