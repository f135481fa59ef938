// The units a neighbourhood reached through neighbour lists (neurograph/neighbours.py), with the
// properties neighborhood_step gives the ends of the edges it reads from the graph.
// params: $keys [string]
UNWIND $keys AS k
MATCH (m:Neuron {key: k})
RETURN labels(m)[0] AS label, m {.key, .model, .layer, .index, .head, .interest, .role, .community} AS node
UNION ALL
UNWIND $keys AS k
MATCH (m:Head {key: k})
RETURN labels(m)[0] AS label, m {.key, .model, .layer, .index, .head, .interest, .role, .community} AS node
