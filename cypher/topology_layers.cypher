// The layers of a model that have neurons, with 1 + the largest neuron index in each
// (topology reads its edges layer by layer, in index ranges).
// params: $model
MATCH (n:Neuron {model: $model})
RETURN n.layer AS layer, max(n.index) + 1 AS n_neurons
ORDER BY layer
