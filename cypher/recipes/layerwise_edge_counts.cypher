// Question: how is weight composition spread over the model — how many COMPOSES edges of each
// kind go from each layer to each layer, and how strong are they on average?
// params: $model
MATCH (a:Neuron {model: $model})-[e:COMPOSES]->(b:Neuron)
RETURN a.layer AS from_layer, b.layer AS to_layer, e.kind AS kind, count(e) AS edges,
       avg(abs(e.weight)) AS mean_abs_weight
ORDER BY from_layer, to_layer, kind
