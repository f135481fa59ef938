// Create or update attention heads under their layer.
// params: $rows [{key, model, layer, head, layer_key}]
UNWIND $rows AS r
MATCH (l:Layer {key: r.layer_key})
MERGE (h:Head {key: r.key})
SET h.model = r.model, h.layer = r.layer, h.head = r.head
MERGE (l)-[:HAS_HEAD]->(h)
