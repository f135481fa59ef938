// Is the store up? Returns one row {one: 1}.
// params:
RETURN 1 AS one
