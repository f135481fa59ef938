// Question: which attention heads does this neuron compose with most strongly, either way:
// heads whose query, key or value read its output (Q/K/V) and heads whose output it reads (O)?
// params: $key (neuron key), $limit
MATCH (n:Neuron {key: $key})-[e:HEAD_COMPOSES]-(h:Head)
RETURN h.key AS head, h.layer AS layer, h.head AS index, e.kind AS kind,
       CASE WHEN startNode(e) = n THEN 'reads neuron' ELSE 'writes to neuron' END AS direction,
       e.weight AS weight
ORDER BY abs(e.weight) DESC, head, kind
LIMIT $limit
