// Remove a model's N2G similar-neuron edges before they are recomputed.
// params: $rows [{model}]
UNWIND $rows AS r
MATCH (:Neuron {model: r.model})-[e:SIMILAR {kind: 'n2g'}]->(:Neuron)
DELETE e
