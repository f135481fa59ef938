// Create or update models. Idempotent.
// params: $rows [{key, name, n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn, source, dataset, n_tokens}]
UNWIND $rows AS r
MERGE (m:Model {key: r.key})
SET m += r
