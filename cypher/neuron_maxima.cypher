// Each neuron's stored maximum activation, for the model worker's relative activations.
// params: $model
MATCH (n:Neuron {model: $model})
RETURN n.layer AS layer, n.index AS index, n.max AS max
