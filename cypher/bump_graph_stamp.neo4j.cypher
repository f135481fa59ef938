// A new change stamp for the graph, written after every write statement (see graph_stamp).
// params: $stamp
MERGE (g:GraphState {key: 'graph'})
SET g.stamp = $stamp
