// Schema for the embedded FalkorDB. Range indexes on every node key; the uniqueness
// constraints on the same keys are created by the store with GRAPH.CONSTRAINT (not Cypher).
CREATE INDEX FOR (n:Model) ON (n.key);
CREATE INDEX FOR (n:Layer) ON (n.key);
CREATE INDEX FOR (n:Neuron) ON (n.key);
CREATE INDEX FOR (n:Neuron) ON (n.model, n.layer);
CREATE INDEX FOR (n:Head) ON (n.key);
CREATE INDEX FOR (n:Token) ON (n.key);
CREATE INDEX FOR (n:Token) ON (n.model, n.text);
CREATE INDEX FOR (n:Example) ON (n.key);
CREATE INDEX FOR (n:Explanation) ON (n.key);
CREATE INDEX FOR (n:PatternNode) ON (n.key);
CREATE INDEX FOR (n:Trace) ON (n.key);
CREATE INDEX FOR (n:Trace) ON (n.model);
CREATE INDEX FOR (n:TraceNode) ON (n.key);
CALL db.idx.fulltext.createNodeIndex('Explanation', 'text');
