// Import an export's relationships of one type between two labels (neurograph/export.py puts
// them in place of Neuron, Neuron and COMPOSES). Idempotent: an existing edge between the same
// nodes whose identifying properties (r.ident: some of kind, rank, role) are equal is updated
// rather than duplicated, so an interrupted import is resumed by running it again.
// params: $rows [{src, dst, ident, props: {…}}]
UNWIND $rows AS r
MATCH (a:Neuron {key: r.src})
MATCH (b:Neuron {key: r.dst})
OPTIONAL MATCH (a)-[old:COMPOSES]->(b)
WITH a, b, r, old, [k IN r.ident | old[k]] AS have, [k IN r.ident | r.props[k]] AS want
WITH a, b, r, collect(CASE WHEN have = want THEN old END) AS same
FOREACH (_ IN CASE WHEN size(same) = 0 THEN [1] ELSE [] END |
  CREATE (a)-[e:COMPOSES]->(b) SET e = r.props)
FOREACH (o IN same | SET o = r.props)
