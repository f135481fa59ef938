"""The store on a real embedded FalkorDB: idempotent writes, durability, clear errors."""

from __future__ import annotations

import asyncio

import pytest

from neurograph.config import Settings
from neurograph.domain import ModelInfo, layer_key, neuron_key
from neurograph.errors import QueryError, StoreUnavailable
from neurograph.store import EmbeddedFalkorDB, open_store


async def _small_graph(store, model: str = "m") -> None:
    await store.write("upsert_models", [ModelInfo(model, 2, 3).row()])
    await store.write("upsert_layers", [
        {"key": layer_key(model, l), "model": model, "layer": l, "n_neurons": 3} for l in range(2)])
    await store.write("upsert_neurons", [
        {"key": neuron_key(model, l, i), "model": model, "layer": l, "index": i,
         "layer_key": layer_key(model, l), "props": {"mean": l + i / 10}}
        for l in range(2) for i in range(3)])
    await store.write("upsert_composes", [
        {"src": neuron_key(model, 0, i), "dst": neuron_key(model, 1, j), "kind": "virtual",
         "weight": (i - j) / 3, "rank": j} for i in range(3) for j in range(3)])


async def _snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, b")
    return [tuple(sorted(r.items(), key=str)) for r in nodes], [tuple(sorted(r.items(), key=str)) for r in edges]


async def test_ping_and_round_trips(store):
    before = store.round_trips
    assert await store.ping()
    assert store.round_trips == before + 1


async def test_same_batch_twice_changes_nothing(store):
    await _small_graph(store)
    first = await _snapshot(store)
    await _small_graph(store)
    assert await _snapshot(store) == first
    assert len(first[0]) == 1 + 2 + 6
    assert len([e for e in first[1] if dict(e)["t"] == "COMPOSES"]) == 9


async def test_sigkill_loses_nothing_committed(tmp_path):
    settings = Settings(data_dir=tmp_path / "db", graph="durable")
    server = EmbeddedFalkorDB(settings.data_dir)
    store = await open_store(settings)
    try:
        await _small_graph(store)
        before = await _snapshot(store)
        await store.close()
        server.kill()  # SIGKILL: no shutdown hook runs
        assert not server.is_running()
        store = await open_store(settings)  # starts it again, replaying the AOF
        assert await _snapshot(store) == before
    finally:
        await store.close()
        server.stop()


async def test_invalid_cypher_is_a_clear_error(store):
    with pytest.raises(QueryError, match="falkordb"):
        await store.run("MATCH (n RETURN n")


async def test_read_path_refuses_writes(store):
    with pytest.raises(QueryError, match="read-only"):
        await store.read_only("CREATE (:Neuron {key: 'x'})")
    # even without our own check, the engine's read-only mode refuses
    with pytest.raises(QueryError):
        await store.run("CREATE (:Neuron {key: 'x'})", write=False)
    assert await store.run("MATCH (n:Neuron {key: 'x'}) RETURN n") == []


async def test_missing_parameter_is_named(store):
    with pytest.raises(QueryError, match="rows"):
        await store.query("upsert_models")


async def test_no_server_is_a_clear_error(tmp_path):
    with pytest.raises(StoreUnavailable, match="neurograph db start"):
        await open_store(Settings(data_dir=tmp_path / "none"), start=False)


async def test_bad_url_is_a_clear_error(tmp_path):
    with pytest.raises(StoreUnavailable, match="cannot reach FalkorDB"):
        await open_store(Settings(data_dir=tmp_path, falkordb_url="unix:///nonexistent/falkordb.sock"))


@pytest.mark.parametrize("uri", ["nonsense://x", "bolt://127.0.0.1:1"])
async def test_neo4j_bad_uri_or_unreachable_is_clear(uri):
    with pytest.raises(StoreUnavailable, match="Neo4j"):
        await open_store(Settings(engine="neo4j", neo4j_uri=uri))


async def test_compacted_log_survives_sigkill(tmp_path):
    """After compact() (an AOF rewrite to a snapshot) and more writes, a SIGKILL loses nothing."""
    settings = Settings(data_dir=tmp_path / "db", graph="compact")
    server = EmbeddedFalkorDB(settings.data_dir)
    store = await open_store(settings)
    try:
        await _small_graph(store, "a")
        await store.compact()
        for _ in range(200):  # wait for the background rewrite to finish
            info = await store.db.connection.info("persistence")
            if not info.get("aof_rewrite_in_progress"):
                break
            await asyncio.sleep(0.05)
        await _small_graph(store, "b")  # written after the rewrite: lands in the new log part
        before = await _snapshot(store)
        await store.close()
        server.kill()
        store = await open_store(settings)
        assert await _snapshot(store) == before
        assert len([n for n in before[0] if dict(n)["label"] == "Model"]) == 2
    finally:
        await store.close()
        server.stop()


async def test_nul_characters_in_strings_are_stored_as_a_visible_standin(store):
    """Byte-level vocabularies have a NUL token; FalkorDB cannot take it in a parameter."""
    await store.write("upsert_tokens", [{"key": "m/t0", "model": "m", "id": 0, "text": "a\x00b"}])
    rows = await store.run("MATCH (t:Token {key: 'm/t0'}) RETURN t.text AS text")
    assert rows == [{"text": "a\u2400b"}]


def _falkordb_py_plain(value):
    """falkordb-py's own reading of a value, made plain the way the store reads it."""
    from falkordb.edge import Edge
    from falkordb.node import Node
    from falkordb.path import Path as FPath

    if isinstance(value, Node):
        return dict(value.properties)
    if isinstance(value, Edge):
        return {**value.properties, "_type": value.relation}
    if isinstance(value, FPath):
        return {"nodes": [_falkordb_py_plain(n) for n in value.nodes()],
                "edges": [_falkordb_py_plain(e) for e in value.edges()]}
    if isinstance(value, list):
        return [_falkordb_py_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _falkordb_py_plain(v) for k, v in value.items()}
    return value


async def test_reply_values_read_as_falkordb_py_reads_them(store):
    """The store parses FalkorDB's replies itself (falkordb-py's parser awaits a coroutine per
    value): every value type must come out as falkordb-py's reading of it."""
    await store.run("CREATE (:T {s: 'a', i: -3, f: 1.5, b: true, l: [1, 'x', 2.5, false]})"
                    "-[:R {w: 0.25, kind: 'k'}]->(:T {s: 'b', v: vecf32([1.0, 2.5])})", write=True)
    query = ("MATCH p = (a:T)-[r:R]->(b:T) RETURN a, r, b, p, [a, r, 1, 2.5, null] AS l, "
             "{k: [a.f, null, false], m: {x: 1, y: 'z'}, e: []} AS m, point({latitude: 1.5, longitude: 2.5}) AS pt, "
             "b.v AS v, a.s AS s, a.i AS i, a.f AS f, a.b AS b2, null AS n, "
             "date('2024-02-29') AS d, localdatetime('2024-02-29T10:11:12') AS dt, "
             "localtime('10:11:12') AS t, duration('P1DT2H') AS du")
    rows = await store.run(query)
    res = await store.graph.ro_query(query)
    names = [h[1] for h in res.header]
    assert rows == [dict(zip(names, map(_falkordb_py_plain, row))) for row in res.result_set]
    assert rows[0]["r"] == {"w": 0.25, "kind": "k", "_type": "R"} and rows[0]["l"][2:] == [1, 2.5, None]


async def test_property_keys_new_since_the_last_read_are_named(store):
    """Replies name property keys by index: one created after the store read the names (by
    another client) is looked up, not dropped or misnamed."""
    await store.run("CREATE (:T {a: 1})", write=True)
    assert await store.run("MATCH (n:T) RETURN n") == [{"n": {"a": 1}}]
    other = await open_store(Settings(data_dir=store.server.data_dir, graph=store.graph_name))
    try:
        await other.run("MATCH (n:T) SET n.brand_new = 'yes' CREATE (:U {b: 2})-[:NEW_REL {c: 3}]->(:U)", write=True)
    finally:
        await other.close()
    assert await store.run("MATCH (n:T) RETURN n") == [{"n": {"a": 1, "brand_new": "yes"}}]
    assert await store.run("MATCH (:U)-[r]->(:U) RETURN r") == [{"r": {"c": 3, "_type": "NEW_REL"}}]


async def test_names_are_read_again_after_the_graph_is_cleared(store):
    """A cleared graph numbers its property keys afresh: the old names must not be reused."""
    await store.run("CREATE (:T {a: 1, b: 2})", write=True)
    assert await store.run("MATCH (n:T) RETURN n") == [{"n": {"a": 1, "b": 2}}]
    await store.clear(schema=False)
    await store.run("CREATE (:T {b: 3})", write=True)
    assert await store.run("MATCH (n:T) RETURN n") == [{"n": {"b": 3}}]
