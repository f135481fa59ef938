// The constraints of the graph, one row per constrained property (FalkorDB's procedure): the
// embedded store drops and re-makes them around an index rebuild (see neurograph/store/embedded.py).
// params: none
CALL db.constraints() YIELD type, label, properties, entitytype, status
UNWIND properties AS p
RETURN type, label, p AS property, entitytype, status
