"""``neurograph build`` end to end on the tiny model: every analysis lands in one graph."""

from __future__ import annotations

import pytest

from loaders.model import tiny_model
from loaders.pipeline import ANALYSES, build


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0, n_layers=2, d_model=64, d_mlp=32, n_heads=4)


async def _counts(store) -> dict[str, int]:
    rows = await store.run("MATCH ()-[e]->() RETURN type(e) AS t, count(e) AS n")
    return {r["t"]: r["n"] for r in rows}


async def test_build_runs_every_analysis_into_one_graph(store, settings, tiny):
    summary = await build(settings, store=store, loaded=tiny, n_tokens=2048, ctx_len=32, top_k=6, edge_k=4,
                          n2g_neurons=2, batch_size=8, progress=False)
    assert set(summary["analyses"]) == set(ANALYSES)
    # each step reports its time and its own peak memory (reset between steps, so a small step
    # does not inherit the harvest's peak)
    steps = {"load", "activations", "connectivity", "n2g", "topology"}
    assert set(summary["seconds"]) == set(summary["peak_rss_mb"]) == steps
    assert all(mb > 50 for mb in summary["peak_rss_mb"].values())
    name = tiny.name
    [model] = await store.run("MATCH (m:Model {key: $m}) RETURN m", {"m": name})
    assert model["m"]["build_complete"] is True and model["m"]["n_layers"] == 2
    counts = await _counts(store)
    for rel in ("HAS_LAYER", "HAS_NEURON", "ACTIVATES_ON", "COMPOSES", "CORRELATES", "HEAD_COMPOSES",
                "TOKEN_EFFECT", "HAS_PATTERN"):
        assert counts.get(rel, 0) > 0, (rel, counts)
    assert counts["HAS_NEURON"] == 2 * 32
    # every edge kind of the token effects is there
    kinds = {r["k"] for r in await store.run("MATCH ()-[e:TOKEN_EFFECT]->() RETURN DISTINCT e.kind AS k")}
    assert kinds == {"input", "output", "activation"}
    # N2G ran on the 2 most interesting neurons of each layer, and topology on all
    n2g = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.n2g_firing_f1 IS NOT NULL RETURN n.layer AS l",
                          {"m": name})
    assert sorted(r["l"] for r in n2g) == [0, 0, 1, 1]
    roles = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.role IS NOT NULL RETURN count(n) AS c", {"m": name})
    assert roles[0]["c"] == 64


async def test_rebuild_changes_nothing(store, settings, tiny):
    kw = dict(store=store, loaded=tiny, n_tokens=1024, ctx_len=32, top_k=4, edge_k=3, n2g_neurons=1,
              batch_size=8, progress=False, analyses=["activations", "composition", "tokens", "n2g"])
    await build(settings, **kw)
    snap = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                           "ORDER BY a, t, b")
    nodes = await store.run("MATCH (n) WHERE NOT n:Model RETURN properties(n) AS p ORDER BY p.key")
    await build(settings, **kw)
    assert await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                           "ORDER BY a, t, b") == snap
    assert await store.run("MATCH (n) WHERE NOT n:Model RETURN properties(n) AS p ORDER BY p.key") == nodes


async def test_unknown_analysis_is_a_clear_error(store, settings, tiny):
    with pytest.raises(ValueError, match="unknown analyses"):
        await build(settings, store=store, loaded=tiny, analyses=["activations", "telepathy"])
