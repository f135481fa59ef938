// The properties unique constraints stand on (FalkorDB's procedure): their indexes are kept.
// params: none
CALL db.constraints() YIELD label, properties
UNWIND properties AS p
RETURN label, p AS property
