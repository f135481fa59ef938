// Add or overwrite properties of a model (build provenance: build_complete, build_args, timings).
// params: $key, $props
MATCH (m:Model {key: $key})
SET m += $props
RETURN m.key AS key
