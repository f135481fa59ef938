// Question: which vocabulary tokens does this neuron promote (positive direct logit effect,
// W_out · W_U) and suppress (negative) most?
// params: $key (neuron key), $limit
MATCH (n:Neuron {key: $key})-[e:TOKEN_EFFECT {kind: 'output'}]->(t:Token)
RETURN t.text AS token, t.id AS id, e.weight AS effect,
       CASE WHEN e.weight >= 0 THEN 'promotes' ELSE 'suppresses' END AS direction
ORDER BY abs(e.weight) DESC, id
LIMIT $limit
