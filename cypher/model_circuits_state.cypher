// What corpus circuits a model already has: its Model node, the settings of the stored
// ATTRIBUTES_TO edges (a JSON string, set when a `neurograph circuits` run finished) and how
// many of them there are (the demo's background pass skips a finished run).
// params: $model
OPTIONAL MATCH (m:Model {key: $model})
WITH m, count(m) AS models
OPTIONAL MATCH (a:Neuron {model: m.name})-[e:ATTRIBUTES_TO]->(b)
RETURN models, m.circuits AS circuits, count(CASE WHEN e.kind = 'neuron' THEN 1 END) AS neuron_edges,
       count(CASE WHEN e.kind = 'logit' THEN 1 END) AS token_edges
