// Corpus circuits: attribution effects merged over many prompts, neuron -> neuron.
// params: $rows [{src, dst, mean, abs_mean, count, prompts}]
UNWIND $rows AS row
MATCH (a:Neuron {key: row.src})
MATCH (b:Neuron {key: row.dst})
MERGE (a)-[e:ATTRIBUTES_TO]->(b)
SET e.kind = 'neuron', e.mean = row.mean, e.abs_mean = row.abs_mean, e.count = row.count,
    e.prompts = row.prompts, e.weight = row.mean
