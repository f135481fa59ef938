// Question: which other neurons have N2G pattern graphs built on the same tokens as this one,
// and which tokens do they share (a cheap way to find candidate duplicate features)?
// params: $key (neuron key), $limit
MATCH (n:Neuron {key: $key})-[:HAS_PATTERN]->(p:PatternNode)
WHERE p.role IN ['activating', 'important']
MATCH (o:Neuron {model: n.model})-[:HAS_PATTERN]->(q:PatternNode {token: p.token, role: p.role})
WHERE o <> n
RETURN o.key AS neuron, o.layer AS layer, o.index AS index,
       collect(DISTINCT p.role + ':' + p.token) AS shared, count(DISTINCT p.token) AS n_shared
ORDER BY n_shared DESC, neuron
LIMIT $limit
