// Add or overwrite properties of existing neurons (stats, N2G scores, topology roles).
// params: $rows [{key, props: {…}}]
UNWIND $rows AS r
MATCH (n:Neuron {key: r.key})
SET n += r.props
