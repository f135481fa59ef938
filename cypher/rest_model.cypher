// One model's metadata (DeepDecipher `metadata` service); no row when the model is unknown.
// params: $model
MATCH (m:Model {key: $model})
RETURN m.key AS key, m.name AS name, m.n_layers AS n_layers, m.d_mlp AS d_mlp,
       m.act_fn AS act_fn, m.dataset AS dataset, m.d_model AS d_model, m.n_heads AS n_heads,
       m.d_vocab AS d_vocab, m.source AS source
