// Neurons a page of attention heads compose with (HEAD_COMPOSES, both directions), grouped per
// (head, kind, direction), strongest |weight| first, at most $cap per group; the API filters and
// orders per field. Neurons come as a summary projection.
// params: $keys [string], $cap
UNWIND $keys AS k
MATCH (n:Head {key: k})-[e:HEAD_COMPOSES]-(m:Neuron)
WITH k, e, m, startNode(e) = n AS outgoing
ORDER BY abs(e.weight) DESC
WITH k, type(e) AS type, e.kind AS kind, outgoing,
     collect({weight: e.weight, rank: e.rank, count: e.count,
              node: m {.key, .model, .layer, .index, .interest, .role, .community}})[..$cap] AS edges
RETURN k AS key, type, kind, outgoing, edges
