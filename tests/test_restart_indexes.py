"""Every query answers the same before and after a compaction and a restart of the store.

FalkorDB 4.16 loses the range-index entries whose numeric value is 0 when it loads a graph
from an RDB image (a restart after the append-only file was rewritten, or a replica's sync):
``WHERE n.layer = 0`` then found nothing, and layer 0 vanished from every listing. The store
rebuilds its range indexes after each load; this test restarts a real store after a compaction
and compares, for every layer, the API's listings and index-backed lookups with those before."""

from __future__ import annotations

import asyncio

import httpx

from loaders.synthetic import write_synthetic_graph
from neurograph.api.app import create_app
from neurograph.config import Settings
from neurograph.store import EmbeddedFalkorDB, open_store

MODEL, LAYERS, D_MLP = "rs", 4, 40
LIST = """query($m: String!, $l: Int, $after: String) {
  neurons(model: $m, layer: $l, first: 25, after: $after) {
    edges { node { key layer index } } pageInfo { hasNextPage endCursor } } }"""


async def _listing(store, settings) -> dict[int, list[str]]:
    app = create_app(settings, store, web_dir=None, cache_entries=0)
    out: dict[int, list[str]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://t") as c:
        for layer in range(LAYERS):
            keys, after = [], None
            while True:
                r = (await c.post("/graphql", json={"query": LIST, "variables": {"m": MODEL, "l": layer,
                                                                                   "after": after}})).json()
                assert "errors" not in r, r
                page = r["data"]["neurons"]
                keys += [e["node"]["key"] for e in page["edges"]]
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            out[layer] = keys
    return out


async def _lookups(store) -> dict:
    counts = {}
    for layer in range(LAYERS):
        for q in ("MATCH (n:Neuron) WHERE n.layer = $l RETURN count(n) AS n",
                  "MATCH (n:Neuron {model: $m, layer: $l}) RETURN count(n) AS n",
                  "MATCH (n:Neuron) WHERE n.model = $m AND n.layer = $l AND n.index = 0 RETURN count(n) AS n"):
            counts[(q, layer)] = (await store.run(q, {"l": layer, "m": MODEL}))[0]["n"]
            # the read-only path runs on the replica, which loads the graph from an RDB image too
            counts[("ro", q, layer)] = (await store.read_only(q, {"l": layer, "m": MODEL}))[0][0]["n"]
    return counts


async def test_compaction_and_restart_keep_every_layer(tmp_path):
    data = tmp_path / "db"
    server = EmbeddedFalkorDB(data)
    settings = Settings(data_dir=data, graph="g")
    store = await open_store(settings)
    await write_synthetic_graph(store, MODEL, n_layers=LAYERS, d_mlp=D_MLP, n_heads=0, d_vocab=50, k=2,
                                n_examples=1)
    before_lists, before_counts = await _listing(store, settings), await _lookups(store)
    assert all(len(v) == D_MLP for v in before_lists.values())
    assert before_counts[("MATCH (n:Neuron) WHERE n.layer = $l RETURN count(n) AS n", 0)] == D_MLP

    await store.compact()  # BGREWRITEAOF: the log becomes an RDB image
    client = server.client()
    for _ in range(400):
        if client.info("persistence")["aof_rewrite_in_progress"] == 0:
            break
        await asyncio.sleep(0.05)
    await store.close()
    server.stop()

    store = await open_store(settings)  # starts the server again: it loads the RDB image
    try:
        assert await _listing(store, settings) == before_lists
        assert await _lookups(store) == before_counts
    finally:
        await store.close()
        server.stop()
