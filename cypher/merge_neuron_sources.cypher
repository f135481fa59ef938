// Provenance of imported neuron values: `sources` names each origin (importer and file) and
// `source_values` holds, at the same position, the JSON of the values that origin gave. An
// origin already listed keeps its place and gets its new values; a new one is appended, so a
// re-import changes nothing and two files that disagree both stay visible.
// params: $rows [{neuron, sources: [string], values: [string]}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.neuron})
WITH n, r, coalesce(n.sources, []) AS old_s, coalesce(n.source_values, []) AS old_v
WITH n, r, old_s, old_v, old_s + [s IN r.sources WHERE NOT s IN old_s] AS new_s
SET n.source_values = [s IN new_s |
        CASE WHEN s IN r.sources
             THEN r.values[[i IN range(0, size(r.sources) - 1) WHERE r.sources[i] = s][0]]
             ELSE old_v[[i IN range(0, size(old_s) - 1) WHERE old_s[i] = s][0]] END],
    n.sources = new_s
