// One layer of a model: its size. No row when the layer is not stored.
// params: $key
MATCH (l:Layer {key: $key})
RETURN l.layer AS layer, l.n_neurons AS n_neurons
