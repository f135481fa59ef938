// Explanations of neurons, best score first (batched).
// params: $keys [string]
UNWIND $keys AS k
MATCH (:Neuron {key: k})-[:EXPLAINED_BY]->(x:Explanation)
WITH k, x ORDER BY coalesce(x.score, -1e9) DESC
RETURN k AS key, collect(x) AS explanations
