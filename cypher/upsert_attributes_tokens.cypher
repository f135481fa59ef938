// Corpus circuits: attribution effects merged over many prompts, neuron -> the target token's logit.
// params: $rows [{src, token, mean, abs_mean, count, prompts}]
UNWIND $rows AS row
MATCH (a:Neuron {key: row.src})
MATCH (b:Token {key: row.token})
MERGE (a)-[e:ATTRIBUTES_TO]->(b)
SET e.kind = 'logit', e.mean = row.mean, e.abs_mean = row.abs_mean, e.count = row.count,
    e.prompts = row.prompts, e.weight = row.mean
