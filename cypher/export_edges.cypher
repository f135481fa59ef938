// Export: the outgoing relationships of one page of source nodes of one label (key order,
// keyset cursor), one row per source node so the cursor advances past nodes without edges.
// neurograph/export.py puts the source label in place of Neuron.
// ($model + '/') is parenthesised: FalkorDB binds STARTS WITH tighter than +.
// params: $after (string: the last source key of the previous page; '' at first), $model (string or null), $limit
MATCH (a:Neuron)
WHERE a.key > $after AND ($model IS NULL OR a.key = $model OR a.key STARTS WITH ($model + '/'))
WITH a ORDER BY a.key LIMIT $limit
OPTIONAL MATCH (a)-[e]->(b)
RETURN a.key AS src,
       collect(CASE WHEN e IS NULL THEN null
                    ELSE {type: type(e), dst_label: labels(b)[0], dst: b.key, props: properties(e)} END) AS edges
ORDER BY src
