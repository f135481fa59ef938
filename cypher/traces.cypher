// A model's stored attribution graphs, newest first; with $neuron, only those that use it.
// params: $model, $neuron (neuron key or null), $limit
MATCH (t:Trace {model: $model})
WHERE $neuron IS NULL OR (t)-[:HAS_NODE]->(:TraceNode)-[:INSTANCE_OF]->(:Neuron {key: $neuron})
RETURN t {.key, .model, .prompt, .target, .target_id, .target_logit, .tokens, .created} AS t
ORDER BY t.created DESC, t.key
LIMIT $limit
