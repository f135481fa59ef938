// N2G token search (DeepDecipher neuron2graph-search): neurons whose pattern graph has ALL of
// these activating tokens, ALL of these important (context) tokens and ALL of the $any tokens
// in either role. Tokens compare lower-cased, and trimmed unless $keep_spaces (then " the" and
// "the" differ, as the tokens do); pass them so. Empty lists add no condition; at least one
// list must be non-empty. $order: 'layer' (layer, index) or 'score' (N2G firing F1, best first).
// params: $model, $activating [string], $important [string], $any [string], $order, $skip, $limit, $keep_spaces (bool)
MATCH (n:Neuron {model: $model})-[:HAS_PATTERN]->(p:PatternNode)
WHERE p.role IN ['activating', 'important'] AND p.token IS NOT NULL
WITH n, p.role AS role,
     CASE WHEN $keep_spaces OR trim(p.token) = '' THEN toLower(p.token) ELSE toLower(trim(p.token)) END AS tok
WHERE tok IN $activating + $important + $any
WITH n, collect(DISTINCT role + ':' + tok) AS hits, collect(DISTINCT tok) AS toks
WHERE all(a IN $activating WHERE ('activating:' + a) IN hits)
  AND all(i IN $important WHERE ('important:' + i) IN hits)
  AND all(x IN $any WHERE x IN toks)
WITH n.key AS key, n.layer AS layer, n.index AS index, n.n2g_firing_f1 AS score,
     CASE WHEN $order = 'score' THEN coalesce(n.n2g_firing_f1, -1.0) ELSE 0.0 END AS rank_score
RETURN key, layer, index, score
ORDER BY rank_score DESC, layer, index
SKIP $skip
LIMIT $limit
