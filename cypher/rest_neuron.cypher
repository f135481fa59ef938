// One neuron's identity and its activation range props (max/min or max_activation/min_activation).
// params: $key
MATCH (n:Neuron {key: $key})
RETURN n.layer AS layer, n.index AS index,
       coalesce(n.max, n.max_activation) AS max, coalesce(n.min, n.min_activation) AS min,
       n.n2g_dot AS n2g_dot
