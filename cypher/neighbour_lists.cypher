// The makings of neighbour lists (neurograph/neighbours.py): for each unit (neuron or head), its
// $per_node strongest edges in each (type, kind, direction) group of the traversed types, ranked as
// neighborhood_step ranks them (|weight| descending, then the other end's key), as the other
// ends' keys and the weights. Nothing else is read: a model's every edge passes through here.
// params: $keys [string], $per_node
UNWIND $keys AS k
MATCH (n:Neuron {key: k})-[e:COMPOSES|CORRELATES|SIMILAR|HEAD_COMPOSES|ATTRIBUTES_TO]-(m)
WHERE m:Neuron OR m:Head
WITH k, startNode(e) = n AS outgoing, type(e) AS type, e.kind AS kind, e.weight AS w, m.key AS other
ORDER BY abs(w) DESC, other
WITH k, type, kind, outgoing, collect(other)[..$per_node] AS others, collect(w)[..$per_node] AS weights
RETURN k AS key, type, kind, outgoing, others, weights
UNION ALL
UNWIND $keys AS k
MATCH (n:Head {key: k})-[e:HEAD_COMPOSES]-(m:Neuron)
WITH k, startNode(e) = n AS outgoing, type(e) AS type, e.kind AS kind, e.weight AS w, m.key AS other
ORDER BY abs(w) DESC, other
WITH k, type, kind, outgoing, collect(other)[..$per_node] AS others, collect(w)[..$per_node] AS weights
RETURN k AS key, type, kind, outgoing, others, weights
