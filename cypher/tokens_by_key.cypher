// Vocabulary tokens by key (batched).
// params: $keys [string]
UNWIND $keys AS k
MATCH (t:Token {key: k})
RETURN k AS key, t
