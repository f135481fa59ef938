// Explanations by key (batched), for Relay node(id).
// params: $keys [string]
UNWIND $keys AS k
MATCH (x:Explanation {key: k})
RETURN k AS key, x
