// Neurons by key (batched: one round trip for a whole page of ids).
// params: $keys [string]
UNWIND $keys AS k
MATCH (n:Neuron {key: k})
RETURN k AS key, n
