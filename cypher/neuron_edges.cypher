// Every weighted edge of a page of neurons, of the requested relationship types, in one round
// trip: outgoing edges of $out_types and incoming edges of $in_types. Flat rows with the other
// end's key only (its model, layer and index are in the key; the API loads anything more in
// one batched query when asked), because every returned value costs client-side parsing. The
// API splits them into inputs / outputs / correlated / similar / heads / tokens and applies each
// field's kind filter, minimum weight, order and page. A token at the other end comes whole
// (`token`: its properties), since the page shows token texts: no second round trip for them.
// params: $keys [string], $out_types [string], $in_types [string]
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[e]->(m)
WHERE type(e) IN $out_types
RETURN k AS key, type(e) AS type, e.kind AS kind, true AS outgoing, e.weight AS weight, e.rank AS rank,
       e.count AS count, m.key AS other, CASE WHEN type(e) = 'TOKEN_EFFECT' THEN properties(m) END AS token
UNION ALL
UNWIND $keys AS k
MATCH (:Neuron {key: k})<-[e]-(m)
WHERE type(e) IN $in_types
RETURN k AS key, type(e) AS type, e.kind AS kind, false AS outgoing, e.weight AS weight, e.rank AS rank,
       e.count AS count, m.key AS other, null AS token
