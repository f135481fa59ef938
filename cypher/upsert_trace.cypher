// One attribution graph's header: the prompt, its target and the model (see loaders/attribution.py);
// `created` is when it was first stored (saving it again changes nothing).
// params: $key, $model, $prompt, $target, $target_id, $target_logit, $tokens [string], $created
MATCH (m:Model {key: $model})
MERGE (t:Trace {key: $key})
ON CREATE SET t.created = $created
SET t.model = $model, t.prompt = $prompt, t.target = $target, t.target_id = $target_id,
    t.target_logit = $target_logit, t.tokens = $tokens
MERGE (m)-[:HAS_TRACE]->(t)
RETURN t.key AS key
