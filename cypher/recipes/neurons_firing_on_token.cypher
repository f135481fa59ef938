// Question: which neurons of a model fire on this token? Counts the neuron's max-activating
// texts whose peak (pivot) token is $token, with the largest activation seen there.
// params: $model, $token (the exact token text such as ' God'), $limit
MATCH (n:Neuron {model: $model})-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example)
WHERE e.pivot IS NOT NULL AND x.tokens[e.pivot] = $token
RETURN n.key AS neuron, n.layer AS layer, n.index AS index, count(x) AS texts,
       max(e.max_activation) AS max_activation
ORDER BY texts DESC, max_activation DESC, neuron
LIMIT $limit
