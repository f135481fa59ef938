"""The synthetic graph the API, web and scale tests build on: every node and edge kind,
deterministic, idempotent."""

from __future__ import annotations

from loaders.synthetic import write_synthetic_graph
from neurograph.domain import EDGE_KINDS, NODE_LABELS
from neurograph.store import open_store


async def _snapshot(store) -> tuple[list, list]:
    nodes = await store.run("MATCH (n) RETURN n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, e.kind AS k, e.rank AS r, "
                            "properties(e) AS p, b.key AS b ORDER BY a, t, k, r, b")
    return nodes, edges


async def test_every_node_and_edge_kind_is_present(store):
    info = await write_synthetic_graph(store, "syn", n_layers=3, d_mlp=8, n_heads=2, d_vocab=40, k=3)
    assert (info.name, info.n_layers, info.d_mlp) == ("syn", 3, 8)
    labels = {r["l"] for r in await store.run("MATCH (n) RETURN DISTINCT labels(n)[0] AS l")}
    assert labels == set(NODE_LABELS)
    kinds = {(r["t"], r["k"]) for r in await store.run("MATCH ()-[e]->() RETURN DISTINCT type(e) AS t, e.kind AS k")}
    for rel, expected in EDGE_KINDS.items():
        present = {k for t, k in kinds if t == rel}
        assert present, f"no {rel} edges"
        assert present <= set(expected), (rel, present)
    for rel in ("HAS_LAYER", "HAS_NEURON", "HAS_HEAD", "EXPLAINED_BY", "HAS_PATTERN", "PATTERN_NEXT", "MATCHES"):
        assert (rel, None) in kinds or any(t == rel for t, _ in kinds), rel
    n = (await store.run("MATCH (n:Neuron {key: 'syn/1/0'}) RETURN n"))[0]["n"]
    assert len(n["hist_edges"]) == len(n["hist_counts"]) + 1 and n["min"] <= n["quantiles"][0] <= n["max"]
    acts = await store.run("MATCH (:Neuron {key: 'syn/1/0'})-[a:ACTIVATES_ON]->(x) RETURN a, x.tokens AS t")
    for r in acts:
        a = r["a"]
        assert len(a["activations"]) == len(r["t"])
        pick = max if a["kind"] != "min" else min
        assert a["activations"][a["pivot"]] == pick(a["activations"])


async def test_same_arguments_same_graph_and_rerun_changes_nothing(store, settings):
    await write_synthetic_graph(store, "syn", n_layers=2, d_mlp=6, d_vocab=30, k=2, seed=3)
    first = await _snapshot(store)
    await write_synthetic_graph(store, "syn", n_layers=2, d_mlp=6, d_vocab=30, k=2, seed=3)  # resumed run
    assert await _snapshot(store) == first
    other = await open_store(settings.with_(graph=settings.graph + "_b"))
    try:
        await write_synthetic_graph(other, "syn", n_layers=2, d_mlp=6, d_vocab=30, k=2, seed=3)
        assert await _snapshot(other) == first
        await other.clear()
        await write_synthetic_graph(other, "syn", n_layers=2, d_mlp=6, d_vocab=30, k=2, seed=4)
        assert await _snapshot(other) != first
    finally:
        await other.clear()
        await other.close()
