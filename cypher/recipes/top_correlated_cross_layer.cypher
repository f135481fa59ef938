// Question: which neuron pairs in different layers have the most correlated activations
// over the corpus (Pearson), strongest first? Each pair is reported once.
// params: $model, $limit
MATCH (a:Neuron {model: $model})-[e:CORRELATES]->(b:Neuron)
WHERE a.layer <> b.layer AND (a.layer < b.layer OR NOT (b)-[:CORRELATES]->(a))
RETURN a.key AS first, b.key AS second, a.layer AS first_layer, b.layer AS second_layer,
       e.weight AS correlation
ORDER BY abs(e.weight) DESC, first, second
LIMIT $limit
