// One breadth-first step of a neighbourhood: for each frontier neuron or head, its strongest
// edges of the chosen relationship types and kinds, at most $per_node by |weight| in each group
// of (type, kind, direction), with the node at the other end. Edges keep their stored direction
// (source, target). Groups let the caller rank each kind on its own scale (a virtual weight of 12
// and a cosine of 0.4 are not comparable) and keep inputs beside outputs.
// params: $keys [string], $types [string], $kinds [string] or null, $min_weight (float or null), $per_node
UNWIND $keys AS k
MATCH (n:Neuron {key: k})-[e]-(m)
WHERE (m:Neuron OR m:Head) AND type(e) IN $types
  AND ($kinds IS NULL OR e.kind IN $kinds)
  AND ($min_weight IS NULL OR abs(e.weight) >= $min_weight)
WITH k, e, m ORDER BY abs(e.weight) DESC
WITH k, type(e) AS type, e.kind AS kind, startNode(e).key = k AS outgoing,
     collect({source: startNode(e).key, target: endNode(e).key, type: type(e), kind: e.kind,
              weight: e.weight, label: labels(m)[0], node: m {.key, .model, .layer, .index, .head, .interest, .role, .community}})[..$per_node] AS edges
RETURN k AS key, type, kind, outgoing, edges
UNION ALL
UNWIND $keys AS k
MATCH (n:Head {key: k})-[e:HEAD_COMPOSES]-(m:Neuron)
WHERE 'HEAD_COMPOSES' IN $types
  AND ($kinds IS NULL OR e.kind IN $kinds)
  AND ($min_weight IS NULL OR abs(e.weight) >= $min_weight)
WITH k, e, m ORDER BY abs(e.weight) DESC
WITH k, type(e) AS type, e.kind AS kind, startNode(e).key = k AS outgoing,
     collect({source: startNode(e).key, target: endNode(e).key, type: type(e), kind: e.kind,
              weight: e.weight, label: labels(m)[0], node: m {.key, .model, .layer, .index, .head, .interest, .role, .community}})[..$per_node] AS edges
RETURN k AS key, type, kind, outgoing, edges
