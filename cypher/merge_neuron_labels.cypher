// Labels an import gives a neuron (e.g. 'feature:all_caps' from Universal Neurons'
// prediction_neurons.csv, one row per neuron and feature): added to its `labels` list once.
// params: $rows [{neuron, labels: [string]}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
WITH n, r, coalesce(n.labels, []) AS have
SET n.labels = have + [x IN r.labels WHERE NOT x IN have]
