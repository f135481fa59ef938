"""The read-only Cypher path: write and escape attempts refused, long reads cut off."""

from __future__ import annotations

import time

import pytest

from neurograph.errors import QueryError

ATTEMPTS = [
    "CREATE (n:Neuron {key: 'evil'})",
    "create (n:Neuron {key: 'evil'})",
    "MATCH (n:Model) SET n.name = 'evil'",
    "MATCH (n:Model) sEt n.name = 'evil' RETURN n",
    "MERGE (n:Neuron {key: 'evil'})",
    "MATCH (n) DETACH DELETE n",
    "MATCH (n) DELETE n",
    "MATCH (n:Model) REMOVE n.name",
    "MATCH (n) WITH n /* harmless */ CREATE (m:X)",
    "MATCH (n) // a comment\nCREATE (m:X)",
    "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
    "load   csv with headers from 'http://127.0.0.1/x.csv' AS row RETURN row",
    "CALL db.idx.fulltext.createNodeIndex('Neuron', 'key')",
    "CALL db.idx.fulltext.drop('Explanation')",
    "CALL apoc.create.node(['X'], {})",
    "CALL db.idx.fulltext.queryNodesX('Explanation', 'x')",
    "CALL db.labelsX()",
    "CALL dbms.security.createUser('x', 'y', false)",
    "UNWIND [1] AS i FOREACH (x IN [1] | CREATE (:X))",
    "MATCH (n) CALL { WITH n CREATE (:X) } RETURN 1",
    "RETURN 1 UNION CREATE (n:X) RETURN 1",
    "CRE/**/ATE (n:X)",
    "MATCH (n) SET n += {evil: true}",
    "DROP INDEX ON :Neuron(key)",
]


@pytest.mark.parametrize("text", ATTEMPTS)
async def test_write_and_escape_attempts_are_refused(store, text):
    await store.write("upsert_models", [{"key": "m", "name": "m", "n_layers": 1, "d_mlp": 1}])
    before = await store.run("MATCH (n) RETURN count(n) AS n, collect(properties(n)) AS p")
    with pytest.raises(QueryError):
        await store.read_only(text)
    assert await store.run("MATCH (n) RETURN count(n) AS n, collect(properties(n)) AS p") == before


@pytest.mark.parametrize("text", [
    "MATCH (n) RETURN 'CREATE (x)' AS s, n.key AS k",   # the word in a string is data
    "CALL db.labels()",
    "CALL db.idx.fulltext.queryNodes('Explanation', 'x') YIELD node RETURN node",
    "CALL { MATCH (n:Model) RETURN n } RETURN n.key AS k",
    "MATCH (n:Model) RETURN n.name AS created",
])
async def test_reads_that_look_like_writes_pass(store, text):
    rows, truncated = await store.read_only(text)
    assert isinstance(rows, list) and truncated is False


async def test_long_reads_are_cut_off(store):
    await store.run("UNWIND range(1, 3000) AS i CREATE (:Scratch {i: i})", write=True)
    t0 = time.monotonic()
    with pytest.raises(QueryError, match="time limit"):
        await store.read_only("MATCH (a:Scratch), (b:Scratch), (c:Scratch) RETURN count(*) AS n", timeout_ms=200)
    assert time.monotonic() - t0 < 10


async def test_rows_are_capped(store):
    rows, truncated = await store.read_only("UNWIND range(1, 50) AS i RETURN i", max_rows=10)
    assert [r["i"] for r in rows] == list(range(1, 11)) and truncated
