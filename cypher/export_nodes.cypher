// Export: one page of the nodes of one label in key order, resumed after a keyset cursor
// (never SKIP: a deep page costs what the first costs), optionally one model's nodes only
// (every key is the model name or starts with 'model/'). neurograph/export.py runs it once per
// label, putting the label in place of Neuron (a label cannot be a parameter).
// ($model + '/') is parenthesised: FalkorDB binds STARTS WITH tighter than +.
// params: $after (string: the last key of the previous page; '' at first), $model (string or null), $limit
MATCH (n:Neuron)
WHERE n.key > $after AND ($model IS NULL OR n.key = $model OR n.key STARTS WITH ($model + '/'))
RETURN n.key AS key, properties(n) AS props
ORDER BY key
LIMIT $limit
