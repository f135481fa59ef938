// An imported model: create it, or fill what an existing one lacks. Exact sizes (the table of
// well-known models, metadata, tensor shapes, --model-info) overwrite; a size only implied by
// the data (largest index seen) is never stored as the size: it is kept as a lower bound
// (`*_at_least`, only grows, dropped once the exact size is known) and the model is flagged
// `sizes_inferred`. `imported` lists every source imported into the model; `source` stays the
// one that created it.
// params: $rows [{key, name, n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn, source, dataset, n_tokens, n_layers_at_least, d_mlp_at_least, n_heads_at_least, sizes_from}]
UNWIND $rows AS r
MERGE (m:Model {key: r.key})
ON CREATE SET m.name = r.name, m.source = r.source
SET m.n_layers = coalesce(r.n_layers, m.n_layers), m.d_mlp = coalesce(r.d_mlp, m.d_mlp),
    m.n_heads = coalesce(r.n_heads, m.n_heads),
    m.d_model = coalesce(r.d_model, m.d_model),
    m.d_vocab = coalesce(r.d_vocab, m.d_vocab), m.act_fn = coalesce(r.act_fn, m.act_fn),
    m.dataset = coalesce(r.dataset, m.dataset),
    m.sizes_from = CASE WHEN r.n_layers IS NULL AND r.d_mlp IS NULL THEN m.sizes_from ELSE r.sizes_from END,
    m.imported = CASE WHEN r.source IN coalesce(m.imported, []) THEN m.imported
                      ELSE coalesce(m.imported, []) + [r.source] END
WITH m, r
SET m.n_layers_at_least = CASE WHEN m.n_layers IS NOT NULL THEN null
                               WHEN m.n_layers_at_least IS NULL OR m.n_layers_at_least < r.n_layers_at_least
                               THEN r.n_layers_at_least ELSE m.n_layers_at_least END,
    m.d_mlp_at_least = CASE WHEN m.d_mlp IS NOT NULL THEN null
                            WHEN m.d_mlp_at_least IS NULL OR m.d_mlp_at_least < r.d_mlp_at_least
                            THEN r.d_mlp_at_least ELSE m.d_mlp_at_least END,
    m.n_heads_at_least = CASE WHEN m.n_heads IS NOT NULL THEN null
                              WHEN m.n_heads_at_least IS NULL OR m.n_heads_at_least < r.n_heads_at_least
                              THEN r.n_heads_at_least ELSE m.n_heads_at_least END,
    m.sizes_inferred = m.n_layers IS NULL OR m.d_mlp IS NULL
