// Every weighted edge of a page of neurons, of the requested relationship types, in one round
// trip: grouped per (neuron, type, kind, direction), strongest |weight| first, at most $cap per
// group. The API splits them into inputs / outputs / correlated / similar / heads / tokens and
// applies each field's kind filter, minimum weight and order. The node at the other end comes as
// a summary projection (the API loads a neighbour's full properties only when asked for them).
// params: $keys [string], $types [string], $cap
UNWIND $keys AS k
MATCH (n:Neuron {key: k})-[e]-(m)
WHERE type(e) IN $types
WITH k, e, m, startNode(e) = n AS outgoing
ORDER BY abs(e.weight) DESC
WITH k, type(e) AS type, e.kind AS kind, outgoing,
     collect({weight: e.weight, rank: e.rank, count: e.count,
              node: m {.key, .model, .layer, .index, .head, .id, .text, .interest, .role, .community}})[..$cap] AS edges
RETURN k AS key, type, kind, outgoing, edges
