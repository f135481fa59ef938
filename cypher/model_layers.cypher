// The layers of a model in order, with how many neurons each has.
// params: $model
MATCH (:Model {key: $model})-[:HAS_LAYER]->(l:Layer)
RETURN l
ORDER BY l.layer
