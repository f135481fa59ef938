// Each neuron node of an attribution graph is an instance of a Neuron of the graph.
// params: $rows [{node, neuron}]
UNWIND $rows AS row
MATCH (n:TraceNode {key: row.node})
MATCH (x:Neuron {key: row.neuron})
MERGE (n)-[:INSTANCE_OF]->(x)
