// How many contexts of each kind a neuron has (batched).
// params: $keys [string]
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[a:ACTIVATES_ON]->(:Example)
RETURN k AS key, a.kind AS kind, count(a) AS n
