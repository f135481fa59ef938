// Attention heads by key (batched).
// params: $keys [string]
UNWIND $keys AS k
MATCH (h:Head {key: k})
RETURN k AS key, h
