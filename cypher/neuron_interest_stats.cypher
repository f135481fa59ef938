// The statistics the interest score ranks, for every neuron of a model that has them (after a
// sharded harvest, each shard recomputes the model-wide ranks from these).
// params: $model
MATCH (n:Neuron {model: $model})
WHERE n.kurt IS NOT NULL
RETURN n.layer AS layer, n.index AS index, n.kurt AS kurt, n.max AS max, n.frac_active AS frac_active
ORDER BY layer, index
