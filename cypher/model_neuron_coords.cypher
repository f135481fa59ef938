// Every neuron of a model by layer and index, the most interesting first: the order in which
// `neurograph pages` (and `serve --pages`, in the background) pre-renders their pages.
// params: $model
MATCH (n:Neuron {model: $model})
RETURN n.layer AS layer, n.index AS index
ORDER BY coalesce(n.interest, 0.0) DESC, layer, index
