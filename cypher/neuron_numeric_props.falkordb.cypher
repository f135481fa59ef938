// The numeric properties a model's neurons carry (built-in statistics and imported columns),
// with how many neurons have each and its range. FalkorDB dialect: typeOf().
// params: $model
MATCH (n:Neuron)
WHERE n.model = $model
UNWIND keys(n) AS k
WITH k, n[k] AS v
WHERE typeOf(v) IN ['Integer', 'Float']
RETURN k AS name, count(v) AS count, min(v) AS min, max(v) AS max
ORDER BY name
