// Neurons a page of attention heads compose with (HEAD_COMPOSES both ways), as flat rows with
// the neuron's key; the API filters, orders and pages per field.
// params: $keys [string]
UNWIND $keys AS k
MATCH (:Head {key: k})-[e:HEAD_COMPOSES]->(m:Neuron)
RETURN k AS key, type(e) AS type, e.kind AS kind, true AS outgoing, e.weight AS weight, e.rank AS rank,
       e.count AS count, m.key AS other
UNION ALL
UNWIND $keys AS k
MATCH (:Head {key: k})<-[e:HEAD_COMPOSES]-(m:Neuron)
RETURN k AS key, type(e) AS type, e.kind AS kind, false AS outgoing, e.weight AS weight, e.rank AS rank,
       e.count AS count, m.key AS other
