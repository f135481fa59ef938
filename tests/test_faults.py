"""Faults: the database killed during an import, restarted under a running client."""

from __future__ import annotations

import asyncio

import pytest

from neurograph.config import Settings
from neurograph.domain import ModelInfo, layer_key, neuron_key
from neurograph.errors import StoreUnavailable
from neurograph.store import EmbeddedFalkorDB, open_store

N_LAYERS, D_MLP = 4, 50


def _rows() -> list[dict]:
    return [{"src": neuron_key("f", l, i), "dst": neuron_key("f", l + 1, (i * 7 + j) % D_MLP),
             "kind": "virtual", "weight": round((i - j) / 17, 4), "rank": j}
            for l in range(N_LAYERS - 1) for i in range(D_MLP) for j in range(20)]


async def _import(store, progress=None) -> None:
    await store.write("upsert_models", [ModelInfo("f", N_LAYERS, D_MLP).row()])
    await store.write("upsert_layers", [{"key": layer_key("f", l), "model": "f", "layer": l,
                                         "n_neurons": D_MLP} for l in range(N_LAYERS)])
    await store.write("upsert_neurons", [
        {"key": neuron_key("f", l, i), "model": "f", "layer": l, "index": i,
         "layer_key": layer_key("f", l), "props": {"mean": i / 3}}
        for l in range(N_LAYERS) for i in range(D_MLP)])
    await store.write("upsert_composes", _rows(), batch_size=100, progress=progress)


async def _state(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN n.key AS k, properties(n) AS p ORDER BY k")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, e.kind AS kind, "
                            "e.weight AS w, e.rank AS r, b.key AS b ORDER BY a, t, kind, b")
    return nodes, edges


async def test_kill_during_import_then_rerun_gives_the_same_graph(tmp_path):
    data = tmp_path / "db"
    server = EmbeddedFalkorDB(data)
    reference = await open_store(Settings(data_dir=data, graph="reference"))
    await _import(reference)
    expected = await _state(reference)
    await reference.close()

    settings = Settings(data_dir=data, graph="interrupted")
    store = await open_store(settings)
    written = 0

    def progress(n: int) -> None:
        nonlocal written
        written += n
        if written >= 1000 and server.is_running():
            server.kill()  # SIGKILL in the middle of the edge load

    with pytest.raises(StoreUnavailable):
        await _import(store, progress)
    assert 1000 <= written < len(_rows())
    await store.close()

    store = await open_store(settings)  # restarts the server, which replays its AOF
    partial = await _state(store)
    assert 0 < len(partial[1]) < len(expected[1])  # some edges survived the kill, not all
    await _import(store)  # the re-run: idempotent MERGEs complete the graph
    assert await _state(store) == expected  # identical, no duplicates
    await store.close()
    server.stop()


async def test_store_reconnects_after_a_database_restart(tmp_path):
    data = tmp_path / "db"
    server = EmbeddedFalkorDB(data)
    store = await open_store(Settings(data_dir=data, graph="g"))
    await store.write("upsert_models", [ModelInfo("r", 1, 1).row()])
    server.kill()
    # during the outage: a clean, named error, not a hang
    with pytest.raises(StoreUnavailable, match="FalkorDB"):
        await asyncio.wait_for(store.run("MATCH (m:Model) RETURN m.key AS k"), timeout=30)
    server.start()
    # the same store object reconnects by itself
    assert await store.run("MATCH (m:Model) RETURN m.key AS k") == [{"k": "r"}]
    await store.close()
    server.stop()


async def test_running_server_survives_a_database_restart(tmp_path):
    """The API keeps serving across a FalkorDB restart: requests during the outage fail with a
    clear error (no 500 traceback), later ones succeed on the same app and store."""
    import httpx

    from loaders.synthetic import write_synthetic_graph
    from neurograph.api.app import create_app

    data = tmp_path / "db"
    server = EmbeddedFalkorDB(data)
    settings = Settings(data_dir=data, graph="served")
    store = await open_store(settings)
    await write_synthetic_graph(store, "synth", n_layers=2, d_mlp=4, n_heads=2, d_vocab=20, k=2)
    # the cache reads the graph's stamp on every request, during the outage too
    app = create_app(settings, store=store, web_dir=None, check_every=0.0)

    def query(index: int) -> dict:
        return {"query": f"{{ neuron(model: \"synth\", layer: 1, index: {index}) {{ key stats {{ mean }} }} }}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ok = (await client.post("/graphql", json=query(2))).json()
        assert ok["data"]["neuron"]["key"] == "synth/1/2"
        server.kill()
        down = await client.post("/graphql", json=query(3))  # not in the response cache
        assert down.status_code == 200
        [err] = down.json()["errors"]
        assert "FalkorDB" in err["message"] and "internal error" not in err["message"]
        health = await client.get("/healthz")
        assert health.status_code == 503 and health.json()["ok"] is False
        server.start()
        again = (await client.post("/graphql", json=query(3))).json()
        assert again["data"]["neuron"]["key"] == "synth/1/3"
        assert (await client.get("/healthz")).status_code == 200
    await store.close()
    server.stop()
