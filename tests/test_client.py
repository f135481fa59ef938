"""The notebook client against the real app: over a real uvicorn socket (blocking Client, run
in a worker thread) and in-process (AsyncClient with ASGITransport)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import networkx as nx
import pytest
import uvicorn

from loaders.synthetic import write_synthetic_graph
from neurograph.api import create_app
from neurograph.client import AsyncClient, Client, GraphQLRequestError
from neurograph.domain import neuron_key


@contextlib.asynccontextmanager
async def served(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())  # same loop as the store's connection
    while not server.started:
        assert not task.done(), task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def app(store, settings):
    await write_synthetic_graph(store, "synth", n_layers=3, d_mlp=16, n_heads=2, d_vocab=60, k=3)
    return create_app(settings, store)


async def test_blocking_client_over_http(app, store):
    async with served(app) as url:
        def use() -> tuple:
            with Client(url) as c:
                n = c.neuron("synth", 1, 3)
                ex = c.examples("synth", 1, 3, kind="max", first=2)
                g = c.neighborhood_graph(n.key, depth=2, per_node=3)
                cy = c.cypher("MATCH (n:Neuron {layer: $l}) RETURN n.key AS key ORDER BY key", {"l": 2})
                data = c.query("{ models { name neuronCount } }")
                stats = {x["name"]: x for x in c.available_stats("synth")}
                top = c.top_neurons("synth", "kurt", first=3, layer=2)
                low = c.top_neurons("synth", "kurt", first=3, ascending=True)
                with pytest.raises(GraphQLRequestError, match="unknown model"):
                    c.neuron("nope", 0, 0)
                return n, ex, g, cy, data, stats, top, low

        n, ex, g, cy, data, stats, top, low = await asyncio.to_thread(use)
    stored = (await store.run("MATCH (n:Neuron {key: $k}) RETURN n", {"k": neuron_key("synth", 1, 3)}))[0]["n"]
    assert n.key == "synth/1/3" and n.stats["kurt"] == stored["kurt"] and n.props["role"] == stored["role"]
    assert len(ex) == 2 and ex[0].rank == 0 and ex[0].tokens[ex[0].pivot]
    assert isinstance(g, nx.DiGraph) and n.key in g and g.number_of_edges() > 0
    assert all("weight" in d for *_, d in g.edges(data=True))
    assert nx.is_weakly_connected(g)
    assert cy.records()[0] == {"key": "synth/2/0"} and len(cy.rows) == 16
    assert data == {"models": [{"name": "synth", "neuronCount": 48}]}
    kurts = [r["k"] for r in await store.run("MATCH (n:Neuron {model: 'synth'}) RETURN n.kurt AS k ORDER BY k")]
    assert stats["kurt"] == {"name": "kurt", "stat": "KURT", "count": 48, "min": kurts[0], "max": kurts[-1]}
    assert [x.stats["kurt"] for x in low] == kurts[:3]
    assert all(x.layer == 2 for x in top) and [x.stats["kurt"] for x in top] == sorted(
        [x.stats["kurt"] for x in top], reverse=True)


async def test_async_client_in_process(app):
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
    async with AsyncClient("http://test", transport=transport) as c:
        sub = await c.neighborhood("synth/0/0", depth=1, kinds=["virtual"], per_node=3)
        assert sub.edges and all(e["kind"] == "virtual" for e in sub.edges)
        g = await c.neighborhood_graph("synth/0/0", depth=1, kinds=["virtual"], per_node=3)
        assert set(g.nodes) == {x["key"] for x in sub.nodes}
        wide = await c.neighborhood("synth/0/0", depth=2, per_node=3, max_nodes=2000)
        cut = await c.neighborhood("synth/0/0", depth=2, per_node=3, max_nodes=5)
        assert len(cut.nodes) == 5 < len(wide.nodes) and cut.truncated and not wide.truncated
        with pytest.raises(GraphQLRequestError, match="read-only"):
            await c.cypher("CREATE (:Neuron {key: 'x'})")
