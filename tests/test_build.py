"""build_from_model on a tiny model into a real FalkorDB: values in the graph, idempotence,
and resume after an interrupted harvest."""

from __future__ import annotations

import numpy as np
import pytest

from loaders.activations import harvest
from loaders.build import build_from_model
from loaders.corpus import corpus_contexts
from loaders.model import tiny_model
from neurograph.domain import example_key, neuron_key, token_key

TOP_K = 3


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0, n_layers=2, d_mlp=32, d_model=32, n_heads=2)


@pytest.fixture(scope="module")
def ctx(model):
    return corpus_contexts(model, "default", n_tokens=24 * 24, ctx_len=24)


@pytest.fixture(scope="module")
def expected(model, ctx):
    return harvest(model, ctx.tokens, top_k=TOP_K, batch_size=8, min_token_count=3, token_top_k=4, progress=False)


async def _snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, p.kind, p.rank, b")
    return ([tuple(sorted(r.items(), key=str)) for r in nodes], [tuple(sorted(r.items(), key=str)) for r in edges])


async def _build(store, model, ctx, tmp_path, **kw):
    return await build_from_model(store, model, ctx, top_k=TOP_K, batch_size=8, min_token_count=3,
                                  token_top_k=4, checkpoint_dir=tmp_path, progress=False, **kw)


async def test_build_writes_the_harvest(store, model, ctx, expected, tmp_path):
    summary = await _build(store, model, ctx, tmp_path)
    L, D = model.info.n_layers, model.info.d_mlp
    assert summary["complete"] and summary["neurons"] == L * D
    assert summary["activations"] == 2 * L * D * TOP_K and summary["token_effects"] == L * D * 4
    assert not list(tmp_path.glob("harvest-*")), "the checkpoint is removed after a complete build"

    [m] = await store.run("MATCH (m:Model {key: $k}) RETURN m", {"k": model.name})
    assert m["m"]["n_layers"] == L and m["m"]["d_mlp"] == D and m["m"]["dataset"] == "default"
    assert m["m"]["n_tokens"] == expected.n_tokens
    assert await store.run("MATCH (:Model {key: $k})-[:HAS_LAYER]->(l)-[:HAS_NEURON]->(n) RETURN count(n) AS c",
                           {"k": model.name}) == [{"c": L * D}]

    # a neuron's statistics
    layer, i = 1, int(np.argmax(expected.kurt[1]))
    [row] = await store.run("MATCH (n:Neuron {key: $k}) RETURN n", {"k": neuron_key(model.name, layer, i)})
    n = row["n"]
    for stat in ("mean", "var", "skew", "kurt", "frac_active", "max", "min", "interest"):
        assert n[stat] == pytest.approx(float(getattr(expected, stat)[layer, i]), rel=1e-6, abs=1e-12), stat
    assert n["interest_rank"] == int(expected.interest_rank[layer, i])
    assert sum(n["hist_counts"]) == expected.n_tokens and len(n["hist_edges"]) == len(n["hist_counts"]) + 1
    assert n["hist_edges"][0] <= n["min"] and n["hist_edges"][-1] >= n["max"]
    assert n["quantiles"] == pytest.approx(expected.quantiles[layer, i].tolist(), rel=1e-6)

    # its max examples, best first, with per-token activations and the pivot
    rows = await store.run(
        "MATCH (n:Neuron {key: $k})-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example) "
        "RETURN e.rank AS rank, e.max_activation AS mx, e.pivot AS pivot, e.activations AS acts, "
        "x.data_index AS di, x.tokens AS tokens, x.source AS source, x.key AS key ORDER BY rank",
        {"k": neuron_key(model.name, layer, i)})
    assert [r["di"] for r in rows] == expected.top_max_ctx[layer, i].tolist()
    for r in rows:
        assert r["key"] == example_key(model.name, r["di"]) and r["source"] == ctx.sources[r["di"]]
        assert r["tokens"] == model.token_strs(ctx.tokens[r["di"]])
        assert r["mx"] == pytest.approx(float(expected.top_max_val[layer, i, r["rank"]]), rel=1e-6)
        assert r["acts"][r["pivot"]] == pytest.approx(r["mx"], rel=1e-6)
        assert len(r["acts"]) == ctx.tokens.shape[1]
    mins = await store.run("MATCH (n:Neuron {key: $k})-[e:ACTIVATES_ON {kind: 'min'}]->(x) "
                           "RETURN e.min_activation AS mn ORDER BY e.rank", {"k": neuron_key(model.name, layer, i)})
    assert [r["mn"] for r in mins] == pytest.approx(expected.top_min_val[layer, i].tolist(), rel=1e-6)

    # mean activation per token, strongest first
    toks = await store.run(
        "MATCH (n:Neuron {key: $k})-[e:TOKEN_EFFECT {kind: 'activation'}]->(t:Token) "
        "RETURN t.key AS key, t.text AS text, e.weight AS w, e.count AS c ORDER BY e.rank",
        {"k": neuron_key(model.name, layer, i)})
    assert [t["key"] for t in toks] == [token_key(model.name, int(t)) for t in expected.token_ids[layer, i, :4]]
    assert [t["w"] for t in toks] == pytest.approx(expected.token_mean[layer, i, :4].tolist(), rel=1e-6)
    assert all(t["c"] >= 3 for t in toks)
    assert toks[0]["text"] == model.token_strs([int(expected.token_ids[layer, i, 0])])[0]


async def test_second_build_changes_nothing(store, model, ctx, tmp_path):
    await _build(store, model, ctx, tmp_path)
    first = await _snapshot(store)
    await _build(store, model, ctx, tmp_path)
    assert await _snapshot(store) == first


async def test_interrupted_build_resumes_to_the_same_graph(store, settings, model, ctx, tmp_path):
    summary = await _build(store, model, ctx, tmp_path, max_batches=1, checkpoint_every=1)
    assert summary["complete"] is False
    assert await store.run("MATCH (n:Neuron) RETURN count(n) AS c") == [{"c": 0}]  # nothing half-written
    assert list(tmp_path.glob("harvest-*.pt"))
    await _build(store, model, ctx, tmp_path)
    resumed = await _snapshot(store)
    await store.clear()
    await _build(store, model, ctx, tmp_path / "fresh")
    assert await _snapshot(store) == resumed


async def test_build_writes_random_examples_beside_the_top_ones(store, model, ctx, tmp_path):
    summary = await _build(store, model, ctx, tmp_path, random_k=2)
    L, D = model.info.n_layers, model.info.d_mlp
    assert summary["activations"] == 2 * L * D * TOP_K + L * D * 2
    rows = await store.run("MATCH (n:Neuron {key: $k})-[e:ACTIVATES_ON {kind: 'random'}]->(x:Example) "
                           "RETURN e.rank AS rank, x.data_index AS c, e.activations AS a ORDER BY rank",
                           {"k": neuron_key(model.name, 1, 5)})
    assert [r["rank"] for r in rows] == [0, 1] and rows[0]["c"] != rows[1]["c"]
    assert all(len(r["a"]) == ctx.tokens.shape[1] for r in rows)


async def test_a_built_neurons_quantiles_are_named_by_the_models_levels(store, settings, model, ctx, tmp_path):
    """The build keeps the quantile levels once, on the Model node; the API names every neuron's
    quantiles by them (in a listing and on the neuron), as the harvest computed them."""
    import httpx

    from neurograph.api.app import create_app

    await _build(store, model, ctx, tmp_path)
    [m] = await store.run("MATCH (m:Model {key: $k}) RETURN m.quantile_levels AS q", {"k": model.name})
    assert m["q"] and len(m["q"]) > 2
    app = create_app(settings, store, web_dir=None, cache_entries=0)
    query = ("query($m: String!) { neuron(model: $m, layer: 1, index: 3) { stats { quantiles quantileLevels } } "
             "neurons(model: $m, layer: 0, first: 2) { edges { node { stats { quantiles quantileLevels } } } } }")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://t") as c:
        got = (await c.post("/graphql", json={"query": query, "variables": {"m": model.name}})).json()
    assert "errors" not in got, got
    for stats in [got["data"]["neuron"]["stats"], *(e["node"]["stats"] for e in got["data"]["neurons"]["edges"])]:
        assert len(stats["quantiles"]) == len(m["q"])
        assert stats["quantileLevels"] == pytest.approx(m["q"])
