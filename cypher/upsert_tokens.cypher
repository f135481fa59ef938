// Create or update vocabulary tokens.
// params: $rows [{key, model, id, text}]
UNWIND $rows AS r
MERGE (t:Token {key: r.key})
SET t.model = r.model, t.id = r.id, t.text = r.text
