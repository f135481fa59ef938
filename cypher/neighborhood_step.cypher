// One breadth-first step of a neighbourhood: for each frontier neuron or head, its strongest
// edges of the chosen relationship types and kinds, at most $per_node by |weight| in each group
// of (type, kind, direction), with the node at the other end. Edges keep their stored direction
// (source, target). Groups let the caller rank each kind on its own scale (a virtual weight of 12
// and a cosine of 0.4 are not comparable) and keep inputs beside outputs. Ties go by the other
// end's key, so the order is the same every time (neurograph/neighbours.py keeps it as lists).
// Edges are collected as references and only the kept ones projected: a hub has thousands.
// params: $keys [string], $types [string], $kinds [string] or null, $min_weight (float or null), $per_node
UNWIND $keys AS k
MATCH (n:Neuron {key: k})-[e:COMPOSES|CORRELATES|SIMILAR|HEAD_COMPOSES|ATTRIBUTES_TO]-(m)
WHERE (m:Neuron OR m:Head) AND type(e) IN $types
  AND ($kinds IS NULL OR e.kind IN $kinds)
  AND ($min_weight IS NULL OR abs(e.weight) >= $min_weight)
WITH k, n, e, m ORDER BY abs(e.weight) DESC, m.key
WITH k, type(e) AS type, e.kind AS kind, startNode(e) = n AS outgoing, collect([e, m])[..$per_node] AS top
RETURN k AS key, type, kind, outgoing,
       [x IN top | {source: startNode(x[0]).key, target: endNode(x[0]).key, type: type, kind: kind, weight: x[0].weight,
                    label: labels(x[1])[0], node: {key: x[1].key, model: x[1].model, layer: x[1].layer, index: x[1].index,
                    head: x[1].head, interest: x[1].interest, role: x[1].role, community: x[1].community}}] AS edges
UNION ALL
UNWIND $keys AS k
MATCH (n:Head {key: k})-[e:HEAD_COMPOSES]-(m:Neuron)
WHERE 'HEAD_COMPOSES' IN $types
  AND ($kinds IS NULL OR e.kind IN $kinds)
  AND ($min_weight IS NULL OR abs(e.weight) >= $min_weight)
WITH k, n, e, m ORDER BY abs(e.weight) DESC, m.key
WITH k, type(e) AS type, e.kind AS kind, startNode(e) = n AS outgoing, collect([e, m])[..$per_node] AS top
RETURN k AS key, type, kind, outgoing,
       [x IN top | {source: startNode(x[0]).key, target: endNode(x[0]).key, type: type, kind: kind, weight: x[0].weight,
                    label: labels(x[1])[0], node: {key: x[1].key, model: x[1].model, layer: x[1].layer, index: x[1].index,
                    head: x[1].head, interest: x[1].interest, role: x[1].role, community: x[1].community}}] AS edges
