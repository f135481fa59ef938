// Does any neuron of the model have an explanation? (neuron_explainer service available)
// params: $model
MATCH (n:Neuron {model: $model})-[:EXPLAINED_BY]->(:Explanation)
RETURN n.key AS key
LIMIT 1
