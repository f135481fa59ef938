// Schema for Neo4j 5: a uniqueness constraint (which is also an index) on every node key.
CREATE CONSTRAINT model_key IF NOT EXISTS FOR (n:Model) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT layer_key IF NOT EXISTS FOR (n:Layer) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT neuron_key IF NOT EXISTS FOR (n:Neuron) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT head_key IF NOT EXISTS FOR (n:Head) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT token_key IF NOT EXISTS FOR (n:Token) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT example_key IF NOT EXISTS FOR (n:Example) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT explanation_key IF NOT EXISTS FOR (n:Explanation) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT pattern_key IF NOT EXISTS FOR (n:PatternNode) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT trace_key IF NOT EXISTS FOR (n:Trace) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT trace_node_key IF NOT EXISTS FOR (n:TraceNode) REQUIRE n.key IS UNIQUE;
CREATE INDEX trace_model IF NOT EXISTS FOR (n:Trace) ON (n.model);
// The one node outside the data model: the graph's change stamp (graph_stamp.neo4j.cypher).
CREATE CONSTRAINT graph_state_key IF NOT EXISTS FOR (n:GraphState) REQUIRE n.key IS UNIQUE;
CREATE INDEX neuron_model_layer IF NOT EXISTS FOR (n:Neuron) ON (n.model, n.layer);
CREATE INDEX token_model_text IF NOT EXISTS FOR (n:Token) ON (n.model, n.text);
CREATE FULLTEXT INDEX explanation_text IF NOT EXISTS FOR (n:Explanation) ON EACH [n.text];
