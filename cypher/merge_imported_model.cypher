// An imported model: create it, or fill what an existing one lacks. Explicit sizes
// (metadata, --model-info) overwrite; sizes inferred from the data only grow. `imported`
// lists every source imported into the model; `source` stays the one that created it.
// params: $rows [{key, name, n_layers, d_mlp, d_model, n_heads, d_vocab, act_fn, source, dataset, n_tokens, explicit_n_layers, explicit_d_mlp}]
UNWIND $rows AS r
MERGE (m:Model {key: r.key})
ON CREATE SET m.name = r.name, m.source = r.source
SET m.n_layers = CASE WHEN r.explicit_n_layers OR m.n_layers IS NULL OR m.n_layers < r.n_layers
                      THEN r.n_layers ELSE m.n_layers END,
    m.d_mlp = CASE WHEN r.explicit_d_mlp OR m.d_mlp IS NULL OR m.d_mlp < r.d_mlp
                   THEN r.d_mlp ELSE m.d_mlp END,
    m.d_model = coalesce(r.d_model, m.d_model), m.n_heads = coalesce(r.n_heads, m.n_heads),
    m.d_vocab = coalesce(r.d_vocab, m.d_vocab), m.act_fn = coalesce(r.act_fn, m.act_fn),
    m.dataset = coalesce(r.dataset, m.dataset),
    m.imported = CASE WHEN r.source IN coalesce(m.imported, []) THEN m.imported
                      ELSE coalesce(m.imported, []) + [r.source] END
