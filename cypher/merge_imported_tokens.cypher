// Tokens named by imported data. An import without a tokenizer knows only the id: a null
// text never erases a text already stored.
// params: $rows [{key, model, id, text}]
UNWIND $rows AS r
MERGE (t:Token {key: r.key})
SET t.model = r.model, t.id = r.id, t.text = coalesce(r.text, t.text)
