// One value of a neuron property in a model, to check that a requested sort/filter property exists
// and is numeric before ordering by it.
// params: $model, $prop (property name)
MATCH (n:Neuron)
WHERE n.model = $model AND n[$prop] IS NOT NULL
RETURN n[$prop] AS v
LIMIT 1
