"""Sharded builds: `build --shard i/n` (or --layers) restricts harvest, composition, heads, tokens
and correlation to some layers' neurons. Shards run one after the other in either order (or at
once) into one store, and with the closing unsharded `--analyses topology` run give exactly the
graph one whole run gives: every node, edge and property compared."""

from __future__ import annotations

import math

import pytest

from loaders.model import tiny_model
from loaders.pipeline import build, shard_layers
from neurograph.cli import build_parser

STEPS = ["activations", "composition", "heads", "tokens", "correlation"]
ARGS = dict(n_tokens=20 * 24, ctx_len=24, top_k=2, edge_k=3, random_k=1, quantile_k=1, quantile_bins=3,
            progress=False)
# how the runs were made, not what the graph says: differs by design between the two builds
PROVENANCE = {"build_args", "built_at", "build_shards"}


@pytest.fixture(scope="module")
def model():
    # three layers: shard 0/2 owns layers 0 and 2, shard 1/2 layer 1, so edges cross shards both ways
    return tiny_model(seed=3, n_layers=3, d_mlp=24, d_model=32, n_heads=2)


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


async def dump(store) -> tuple[dict, dict]:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, n.key AS key, properties(n) AS p")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b")
    node_map = {(r["label"], r["key"]): {k: v for k, v in r["p"].items() if k not in PROVENANCE} for r in nodes}
    edge_map: dict = {}
    for r in edges:
        p = r["p"]
        key = (r["a"], r["t"], p.get("kind"), p.get("rank") if r["t"] == "ACTIVATES_ON" else None, r["b"])
        assert key not in edge_map, f"edge written twice: {key}"
        edge_map[key] = p
    return node_map, edge_map


def assert_same(one: tuple[dict, dict], sharded: tuple[dict, dict]) -> None:
    for got, want, what in ((sharded[0], one[0], "nodes"), (sharded[1], one[1], "edges")):
        assert got.keys() == want.keys(), (what, sorted(set(got) ^ set(want))[:5])
        diff = [(k, p) for k, v in want.items() for p in v.keys() | got[k].keys() if not _close(v.get(p), got[k].get(p))]
        assert not diff, (what, sorted({p for _, p in diff}), diff[:5])


async def one_run(store, settings, model) -> tuple[dict, dict]:
    await build(settings, model=model.name, analyses=STEPS + ["topology"], store=store, loaded=model, **ARGS)
    return await dump(store)


async def test_two_shards_in_either_order_give_the_graph_of_one_run(store, settings, model):
    one = await one_run(store, settings, model)
    counts = {t: sum(1 for k in one[1] if k[1] == t) for t in ("COMPOSES", "CORRELATES", "HEAD_COMPOSES",
                                                                "TOKEN_EFFECT", "ACTIVATES_ON")}
    assert all(counts.values()), counts  # every kind is there to compare
    for order in ([(0, 2), (1, 2)], [(1, 2), (0, 2)]):
        await store.clear()
        for shard in order:
            s = await build(settings, model=model.name, analyses=STEPS + ["n2g", "topology"], shard=shard,
                            store=store, loaded=model, **ARGS)
            assert s["layers"] == [l for l in range(3) if l % 2 == shard[0]]
            assert set(s["skipped"]) == {"n2g", "topology"} and "topology" not in s["seconds"]
        [m] = await store.run("MATCH (m:Model {key: $k}) RETURN m.build_shards AS s, m.build_complete AS c",
                              {"k": model.name})
        assert sorted(m["s"]) == ["0,2", "1"] and not m["c"]  # complete only after the closing run
        await build(settings, model=model.name, analyses=["topology"], store=store, loaded=model, **ARGS)
        assert_same(one, await dump(store))


async def test_a_shard_writes_only_its_own_neurons_lists(store, settings, model):
    await build(settings, model=model.name, analyses=STEPS, layers=[1], store=store, loaded=model, **ARGS)
    stats = await store.run("MATCH (n:Neuron) WHERE n.kurt IS NOT NULL RETURN DISTINCT n.layer AS l")
    assert stats == [{"l": 1}]
    for q in ("MATCH (n:Neuron)-[:ACTIVATES_ON]->() RETURN DISTINCT n.layer AS l",
              "MATCH (n:Neuron)-[:CORRELATES]->() RETURN DISTINCT n.layer AS l",
              "MATCH (n:Neuron)-[:TOKEN_EFFECT]->() RETURN DISTINCT n.layer AS l",
              "MATCH (n:Neuron)-[:HEAD_COMPOSES]-() RETURN DISTINCT n.layer AS l"):
        assert await store.run(q) == [{"l": 1}], q
    # composition edges touch layer 1 at one end at least (its own lists, either direction)
    rows = await store.run("MATCH (a:Neuron)-[e:COMPOSES]->(b:Neuron) RETURN a.layer AS a, b.layer AS b, e.kind AS k")
    assert rows and all(1 in (r["a"], r["b"]) for r in rows)
    assert {r["k"] for r in rows} >= {"in_out", "out_in", "virtual", "gate_virtual", "in_in", "out_out"}


def test_shard_arguments():
    assert shard_layers(30, None, (1, 4)) == [1, 5, 9, 13, 17, 21, 25, 29]
    assert shard_layers(30, [3, 4, 5, 9], (1, 4)) == [5, 9]
    assert shard_layers(4, None, (0, 1)) is None and shard_layers(4, [0, 1, 2, 3], None) is None
    with pytest.raises(ValueError, match="layers 0..3"):
        shard_layers(4, [4], None)
    with pytest.raises(ValueError, match="no layer"):
        shard_layers(2, [0], (1, 2))
    args = build_parser().parse_args(["build", "--shard", "2/3", "--layers", "1", "2"])
    assert args.shard == (2, 3) and args.layers == [1, 2]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["build", "--shard", "3/3"])
