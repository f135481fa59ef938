// Remove a neuron's N2G pattern graph (its PatternNodes and their edges) before a rebuild.
// params: $rows [{neuron}]
UNWIND $rows AS r
MATCH (:Neuron {key: r.neuron})-[:HAS_PATTERN]->(p:PatternNode)
DETACH DELETE p
