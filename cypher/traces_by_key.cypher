// One stored attribution graph's header.
// params: $key
MATCH (t:Trace {key: $key})
RETURN t {.key, .model, .prompt, .target, .target_id, .target_logit, .tokens, .created} AS t
