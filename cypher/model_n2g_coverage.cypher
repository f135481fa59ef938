// N2G coverage of a model: how many of its neurons have a pattern graph (n2g_nodes is set when
// one is stored), of all its neurons. The UI's model page shows "N2G: done / total" while the
// background pass fills it in.
// params: $model
MATCH (n:Neuron {model: $model})
RETURN count(n.n2g_nodes) AS done, count(n) AS total
