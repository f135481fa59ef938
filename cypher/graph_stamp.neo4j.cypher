// The graph's change stamp (see Store.read_stamp): any write replaces it, so a cached API
// answer keyed by the stamp it was made under is never served after the graph changed.
// FalkorDB keeps the stamp beside the graph as a plain key instead, outside the graph.
// params: (none)
MATCH (g:GraphState {key: 'graph'})
RETURN g.stamp AS stamp
