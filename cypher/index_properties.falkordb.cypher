// Every indexed property of the graph, with whether it has a range index (FalkorDB's procedure):
// what the embedded store rebuilds after a load (see neurograph/store/embedded.py).
// params: none
CALL db.indexes() YIELD label, properties, types, entitytype
UNWIND properties AS p
RETURN label, p AS property, toString('RANGE' IN types[p]) AS is_range, entitytype
