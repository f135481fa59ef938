// The tokens of the examples in $keys (n2g_top_examples_of gives their keys), with token ids
// where the example stores them.
// params: $keys [string]
UNWIND $keys AS k
MATCH (x:Example {key: k})
RETURN x.key AS example, x.tokens AS tokens, x.token_ids AS token_ids
