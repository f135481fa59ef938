"""The read-only Cypher path: write and escape attempts refused, long reads cut off."""

from __future__ import annotations

import asyncio
import time

import pytest

from neurograph.errors import QueryError
from neurograph.store.guard import checked_read_only

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
    # FalkorDB's crash shapes: CALL {} subqueries (with procedures, DISTINCT, COLLECT, comments,
    # UNION inside), FOREACH; the first one stopped the server under GRAPH.RO_QUERY.
    "CALL { CALL db.labels() } RETURN 1",
    "CALL { CALL db.labels() YIELD label RETURN DISTINCT label } RETURN label",
    "CALL { MATCH (n) RETURN collect(n) AS c } RETURN c",
    "CALL { // a comment\n MATCH (n) RETURN n } RETURN n",
    "CALL { MATCH (n) RETURN n UNION MATCH (n) RETURN n } RETURN n",
    "CALL { MATCH (n:Model) RETURN n } RETURN n.key AS k",
    "MATCH (n) CALL { WITH n RETURN n.key AS k } RETURN k",
    "FOREACH (x IN [1] | MERGE (:X))",
    "MATCH (n) RETURN COUNT { (n)-->() } AS c",
    "MATCH (n) WHERE EXISTS { (n)-->() } RETURN n",
    "RETURN 1; MATCH (n) DETACH DELETE n",
    "MATCH (n) RETURN evilFunction(n)",
    "CALL algo.pageRank('Neuron', 'COMPOSES')",
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


async def test_answers_are_bounded_in_bytes(store):
    # one row of 200k integers is ~1.3 MB of JSON: over a 1 MB limit it is refused, not sent
    with pytest.raises(QueryError, match="larger than"):
        await store.read_only("RETURN range(1, 200000) AS r", max_bytes=2**20)
    rows, truncated = await store.read_only("UNWIND range(1, 100) AS i RETURN range(1, 1000) AS r", max_bytes=2**16)
    assert truncated and 0 < len(rows) < 100


async def test_comments_never_reach_the_engine():
    assert checked_read_only("MATCH (n) /* x */ RETURN n // y") == "MATCH (n) RETURN n"


async def test_a_crash_on_the_replica_leaves_the_serving_store_alone(store):
    """Isolation, the second defence: a query that kills FalkorDB, sent past the grammar straight
    to the replica, stops the replica only; the next read-only query restarts it."""
    await store.write("upsert_models", [{"key": "m", "name": "m", "n_layers": 1, "d_mlp": 1}])
    rows, _ = await store.read_only("MATCH (n:Model) RETURN n.key AS k")
    assert rows == [{"k": "m"}]
    replica = store.replica
    pid = replica.pid()
    with pytest.raises(Exception):
        await asyncio.to_thread(replica.client().execute_command, "GRAPH.RO_QUERY", store.graph_name,
                                "CALL { CALL db.labels() } RETURN 1")
    assert not replica.is_running()  # FalkorDB 4.16 segfaults on it
    assert await store.ping()  # the primary serves on
    t0 = time.monotonic()
    rows, _ = await store.read_only("MATCH (n:Model) RETURN n.key AS k")
    assert rows == [{"k": "m"}] and replica.pid() != pid
    assert time.monotonic() - t0 < 60
