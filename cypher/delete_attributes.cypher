// Remove a model's corpus circuits (ATTRIBUTES_TO edges) before a new run writes its own, so no
// pair of an earlier run (other prompts, other settings) stays beside them.
// params: $model
MATCH (a:Neuron {model: $model})-[e:ATTRIBUTES_TO]->()
DELETE e
