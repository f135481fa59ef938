// One neuron's identity, its activation range props (max/min or max_activation/min_activation),
// its imported N2G drawing and its N2G pattern's held-out firing F1 (NeuroNav's explanation score).
// params: $key
MATCH (n:Neuron {key: $key})
RETURN n.layer AS layer, n.index AS index,
       coalesce(n.max, n.max_activation) AS max, coalesce(n.min, n.min_activation) AS min,
       n.n2g_dot AS n2g_dot, n.n2g_firing_f1 AS n2g_firing_f1
