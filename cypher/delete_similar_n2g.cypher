// Remove a model's N2G similar-neuron edges before they are recomputed. Returns the neurons they
// joined (`touched`), whose neighbour lists the store then forgets (neurograph/neighbours.py).
// params: $rows [{model}]
UNWIND $rows AS r
MATCH (a:Neuron {model: r.model})-[e:SIMILAR {kind: 'n2g'}]->(b:Neuron)
DELETE e
RETURN collect(DISTINCT a.key) + collect(DISTINCT b.key) AS touched
