// neuron2graph-search (fallback when neurograph.search is absent): neurons whose N2G pattern has
// a node with this token in one of the roles (activating | important), sorted by (layer, neuron).
// Tokens compare lower-cased and trimmed, as neurograph.search does (pass $token so).
// params: $model, $token, $roles
MATCH (n:Neuron {model: $model})-[:HAS_PATTERN]->(p:PatternNode)
WHERE p.role IN $roles AND p.token IS NOT NULL
  AND (toLower(trim(p.token)) = $token OR (trim(p.token) = '' AND toLower(p.token) = $token))
RETURN DISTINCT n.layer AS layer, n.index AS neuron
ORDER BY layer, neuron
