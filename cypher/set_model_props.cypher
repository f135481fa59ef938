// Add or overwrite properties of existing models (e.g. the connectivity kinds finished).
// params: $rows [{key, props: {…}}]
UNWIND $rows AS r
MATCH (m:Model {key: r.key})
SET m += r.props
