// The attention heads of a model (or of one layer), in (layer, head) order.
// params: $model, $layer (int or null)
MATCH (h:Head)
WHERE h.model = $model AND ($layer IS NULL OR h.layer = $layer)
RETURN h
ORDER BY h.layer, h.head
