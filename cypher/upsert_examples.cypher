// Create or update dataset contexts (shared by every neuron that activates on them).
// params: $rows [{key, model, tokens, token_ids, data_index, source}]  (token_ids: null when unknown, e.g. imports)
UNWIND $rows AS r
MERGE (x:Example {key: r.key})
SET x.model = r.model, x.tokens = r.tokens, x.data_index = r.data_index, x.source = r.source,
    x.token_ids = r.token_ids
