// Import an export (neurograph/export.py import_jsonl): create or update nodes of one label by
// key with exactly the exported properties added. The importer puts the label in place of Neuron.
// params: $rows [{key, props: {…}}]
UNWIND $rows AS r
MERGE (n:Neuron {key: r.key})
SET n += r.props
