// The numeric properties a model's neurons carry (built-in statistics and imported columns),
// with how many neurons have each and its range. Neo4j dialect: type predicate expressions.
// params: $model
MATCH (n:Neuron)
WHERE n.model = $model
UNWIND keys(n) AS k
WITH k, n[k] AS v
WHERE v IS :: INTEGER OR v IS :: FLOAT
RETURN k AS name, count(v) AS count, min(v) AS min, max(v) AS max
ORDER BY name
