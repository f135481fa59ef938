// What a model already has before connectivity is built: its Model node, layers, neurons,
// heads, and the connectivity kinds already finished (resume).
// params: $model
OPTIONAL MATCH (m:Model {key: $model})
WITH m, count(m) AS models
OPTIONAL MATCH (l:Layer {model: $model})
WITH m, models, count(l) AS layers
OPTIONAL MATCH (n:Neuron {model: $model})
WITH m, models, layers, count(n) AS neurons
OPTIONAL MATCH (h:Head {model: $model})
RETURN models, layers, neurons, count(h) AS heads, m.connectivity AS done
