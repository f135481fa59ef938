"""Topology on small hand-built graphs in a real FalkorDB, where the answer is known."""

from __future__ import annotations

import itertools

import pytest

from neurograph.domain import ModelInfo, layer_key, neuron_key
from neurograph.errors import NeuroGraphError, NotFound
from neurograph.topology import HUB_Z, compute_topology, role_of

LAYERS = 3


def key(model: str, i: int) -> str:
    """Neuron number i lives in layer i % LAYERS, so every graph spans several layers and batches."""
    return neuron_key(model, i % LAYERS, i // LAYERS)


async def write_graph(store, model: str, n: int, edges: list[tuple[int, int, float]], *,
                      rel: str = "composes", kind: str = "virtual") -> None:
    per_layer = -(-n // LAYERS)
    await store.write("upsert_models", [ModelInfo(model, LAYERS, per_layer).row()])
    await store.write("upsert_layers", [{"key": layer_key(model, l), "model": model, "layer": l,
                                         "n_neurons": per_layer} for l in range(LAYERS)])
    await store.write("upsert_neurons", [{"key": key(model, i), "model": model, "layer": i % LAYERS,
                                          "index": i // LAYERS, "layer_key": layer_key(model, i % LAYERS),
                                          "props": {}} for i in range(n)])
    await add_edges(store, model, edges, rel=rel, kind=kind)


async def add_edges(store, model: str, edges, *, rel: str = "composes", kind: str = "virtual") -> None:
    rows = [{"src": key(model, a), "dst": key(model, b), "kind": kind, "weight": w, "rank": r}
            for r, (a, b, w) in enumerate(edges)]
    if rel == "correlates":
        for r in rows:
            r.pop("kind")
    await store.write(f"upsert_{rel}", rows)


def clique(nodes: list[int], w: float = 1.0) -> list[tuple[int, int, float]]:
    return [(a, b, w) for a, b in itertools.combinations(nodes, 2)]


async def props(store, model: str) -> dict[int, dict]:
    rows = await store.run("MATCH (n:Neuron {model: $m}) RETURN n.layer AS l, n.index AS i, n.degree AS degree, "
                           "n.strength AS strength, n.betweenness AS betweenness, n.community AS community, "
                           "n.participation AS participation, n.within_z AS within_z, n.role AS role", {"m": model})
    return {r["i"] * LAYERS + r["l"]: r for r in rows}


async def test_two_cliques_and_a_bridge(store):
    # cliques 0-4 and 5-9; neuron 10 links to two members of each
    a, b, bridge = list(range(5)), list(range(5, 10)), 10
    edges = clique(a) + clique(b) + [(bridge, x, 1.0) for x in (0, 1, 5, 6)]
    await write_graph(store, "two", 11, edges)
    summary = await compute_topology(store, "two", batch_neurons=2)
    assert summary["nodes"] == 11 and summary["edges"] == 24 and summary["communities"] == 2
    assert summary["modularity"] > 0.3 and summary["written"] == 11
    p = await props(store, "two")
    assert len({p[x]["community"] for x in a}) == 1 and len({p[x]["community"] for x in b}) == 1
    assert p[0]["community"] != p[5]["community"]
    # the bridge carries every shortest path between the cliques
    assert max(p, key=lambda x: p[x]["betweenness"]) == bridge
    assert p[bridge]["participation"] == pytest.approx(0.5)  # half its strength goes to each side
    assert max(p, key=lambda x: p[x]["participation"]) == bridge
    assert p[bridge]["degree"] == 4 and p[bridge]["strength"] == pytest.approx(4.0)
    # members with no link out of their clique are ultra-peripheral, the others peripheral at most
    for x in (2, 3, 4, 7, 8, 9):
        assert p[x]["participation"] == 0.0 and p[x]["role"] == "ultra_peripheral"
    # with two modules P can reach only 0.5: Guimerà–Amaral call such a bridge peripheral
    assert p[bridge]["role"] == role_of(p[bridge]["within_z"], 0.5) == "peripheral"


async def test_bridge_between_three_cliques_is_a_connector(store):
    cliques = [list(range(c * 5, c * 5 + 5)) for c in range(3)]
    bridge = 15
    edges = [e for c in cliques for e in clique(c)] + [(bridge, c[i], 1.0) for c in cliques for i in (0, 1)]
    await write_graph(store, "three", 16, edges)
    summary = await compute_topology(store, "three", progress=True)
    assert summary["communities"] == 3
    p = await props(store, "three")
    assert p[bridge]["participation"] == pytest.approx(1 - 3 * (1 / 3) ** 2)
    assert p[bridge]["role"] == "connector"
    assert summary["roles"]["connector"] == 1
    for c in cliques:
        assert len({p[x]["community"] for x in c}) == 1
        for x in c[2:]:
            assert p[x]["role"] == "ultra_peripheral"
        for x in c[:2]:  # one link of five out of the clique (unless the bridge joined this one)
            assert p[x]["role"] in ("ultra_peripheral", "peripheral")


async def test_star_centres_are_provincial_hubs(store):
    # two stars of 10 leaves (correlations) whose centres correlate with each other
    left, right = 0, 11
    edges = [(left, i, 0.8) for i in range(1, 11)] + [(right, i, 0.8) for i in range(12, 22)] + [(left, right, 0.8)]
    await write_graph(store, "stars", 22, edges, rel="correlates")
    summary = await compute_topology(store, "stars", kinds=("CORRELATES:pearson",))
    assert summary["communities"] == 2
    p = await props(store, "stars")
    for centre in (left, right):
        assert p[centre]["within_z"] >= HUB_Z
        assert p[centre]["participation"] == pytest.approx(1 - (10 / 11) ** 2 - (1 / 11) ** 2)
        assert p[centre]["role"] == "provincial_hub"
        assert p[centre]["strength"] == pytest.approx(0.8 * 11)
    assert {p[i]["role"] for i in range(22) if i not in (left, right)} == {"ultra_peripheral"}
    assert summary["roles"] == {"provincial_hub": 2, "ultra_peripheral": 20}


async def test_weight_sign_kinds_and_min_weight(store):
    # two triangles of strong negative weights, joined by weak positive edges of another kind
    edges = clique([0, 1, 2], -0.9) + clique([3, 4, 5], -0.9)
    await write_graph(store, "sel", 6, edges)
    await add_edges(store, "sel", [(0, 3, 0.05), (1, 4, 0.05)], kind="in_out")
    everything = await compute_topology(store, "sel", kinds=("COMPOSES",))
    assert everything["edges"] == 8 and everything["communities"] == 2
    p = await props(store, "sel")
    assert p[0]["strength"] == pytest.approx(1.85)  # |weight| is what counts
    assert await compute_topology(store, "sel", kinds=("COMPOSES",), min_weight=0.1) | {"seconds": None} == \
        await compute_topology(store, "sel", kinds=("COMPOSES:virtual",)) | {"seconds": None}
    only_weak = await compute_topology(store, "sel", kinds=("COMPOSES:in_out",))
    assert (only_weak["nodes"], only_weak["edges"]) == (4, 2)
    p = await props(store, "sel")
    # the re-run cleared neurons 2 and 5, which have no in_out edge, instead of leaving stale props
    assert p[2]["role"] is None and p[5]["degree"] is None
    assert p[0]["degree"] == 1


async def test_parallel_and_reverse_edges_count_once(store):
    await write_graph(store, "par", 3, [(0, 1, 0.5), (1, 0, 0.7), (1, 2, 0.2)], rel="correlates")
    await add_edges(store, "par", [(0, 1, -0.9)], kind="out_in")
    summary = await compute_topology(store, "par", kinds=("COMPOSES", "CORRELATES"))
    assert summary["edges"] == 2
    p = await props(store, "par")
    assert p[0]["degree"] == 1 and p[0]["strength"] == pytest.approx(0.9)  # max |weight| of the pair
    assert p[1]["strength"] == pytest.approx(1.1)
    # By default only what flows counts: virtual weights and correlations, not the cosine kinds.
    await compute_topology(store, "par")
    assert (await props(store, "par"))[0]["strength"] == pytest.approx(0.7)


async def test_backbone_keeps_each_neurons_strongest_edges(store):
    # two cliques of 10 (9 strong ties each) and one weak tie between them
    edges = clique(list(range(10))) + clique(list(range(10, 20))) + [(0, 10, 0.01)]
    await write_graph(store, "bb", 20, edges)
    pruned = await compute_topology(store, "bb", per_node=9, write=False)
    assert pruned["edges"] == 2 * 45 and pruned["per_node"] == 9  # the weak tie is no one's top 9
    assert (await compute_topology(store, "bb", per_node=1, write=False))["nodes"] == 20  # none left out
    assert (await compute_topology(store, "bb", per_node=10, write=False))["edges"] == 2 * 45 + 1
    assert (await compute_topology(store, "bb", per_node=None, write=False))["edges"] == 2 * 45 + 1


async def test_write_false_only_reports(store):
    await write_graph(store, "dry", 4, clique([0, 1, 2, 3]))
    summary = await compute_topology(store, "dry", write=False)
    assert summary["nodes"] == 4 and summary["written"] == 0
    assert all(r["role"] is None for r in (await props(store, "dry")).values())


async def test_bad_input_is_a_clear_error(store):
    with pytest.raises(NotFound, match="ghost"):
        await compute_topology(store, "ghost")
    await write_graph(store, "big", 6, clique(list(range(6))))
    with pytest.raises(NeuroGraphError, match="more than 10 selected edges"):
        await compute_topology(store, "big", max_edges=10)
    with pytest.raises(ValueError, match="COMPOSES kinds"):
        await compute_topology(store, "big", kinds=("COMPOSES:nope",))
    with pytest.raises(ValueError, match="type must be one of"):
        await compute_topology(store, "big", kinds=("ACTIVATES_ON",))
    assert all(r["role"] is None for r in (await props(store, "big")).values())  # nothing written


def test_role_thresholds():
    assert role_of(0.0, 0.05) == "ultra_peripheral"
    assert role_of(0.0, 0.06) == "peripheral"
    assert role_of(2.49, 0.7) == "connector"
    assert role_of(0.0, 0.81) == "kinless"
    assert role_of(2.5, 0.3) == "provincial_hub"
    assert role_of(2.5, 0.5) == "connector_hub"
    assert role_of(4.0, 0.9) == "kinless_hub"


async def test_circuits_get_their_own_topology_beside_the_weights(store, settings):
    """ATTRIBUTES_TO (corpus circuits) is analysed on its own and stored as circuit_* props: two
    circuit cliques become two circuit communities while the COMPOSES graph (one ring) keeps its
    own props; a re-run over fewer circuit edges clears the neurons that left; GraphQL serves
    both, the same way."""
    import httpx

    from neurograph.api.app import create_app
    from neurograph.domain import CIRCUIT_TOPOLOGY_KINDS, CIRCUIT_TOPOLOGY_PREFIX

    ring = [(i, (i + 1) % 10, 1.0) for i in range(10)]
    await write_graph(store, "circ", 10, ring)
    cliques = clique(list(range(5)), 2.0) + clique(list(range(5, 10)), 2.0) + [(4, 5, 0.1)]
    rows = [{"src": key("circ", a), "dst": key("circ", b), "mean": -w if a % 2 else w, "abs_mean": w, "count": 3,
             "prompts": 8} for a, b, w in cliques]
    await store.write("upsert_attributes", rows)
    plain = await compute_topology(store, "circ")
    circ = await compute_topology(store, "circ", kinds=CIRCUIT_TOPOLOGY_KINDS, prefix=CIRCUIT_TOPOLOGY_PREFIX,
                                  per_node=None)
    assert plain["edges"] == 10 and plain["nodes"] == 10
    assert circ["edges"] == len(cliques) and circ["communities"] == 2
    got = await store.run("MATCH (n:Neuron {model: 'circ'}) RETURN n.layer AS l, n.index AS i, n.community AS c, "
                          "n.degree AS d, n.role AS r, n.circuit_community AS cc, n.circuit_degree AS cd, "
                          "n.circuit_role AS cr")
    by = {r["i"] * LAYERS + r["l"]: r for r in got}
    assert all(by[i]["d"] == 2 for i in range(10))  # the ring, untouched by the circuits
    assert len({by[i]["cc"] for i in range(5)}) == 1 and len({by[i]["cc"] for i in range(5, 10)}) == 1
    assert by[0]["cc"] != by[9]["cc"] and by[0]["cd"] == 4 and by[4]["cd"] == 5 and by[0]["cr"] is not None

    app = create_app(settings, store, web_dir=None, cache_entries=0)
    q = """query($l: Int!, $i: Int!) { neuron(model: "circ", layer: $l, index: $i) {
             role community topology { degree } circuitRole circuitCommunity
             circuitTopology { role community degree strength participation withinZ } } }"""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = (await c.post("/graphql", json={"query": q, "variables": {"l": 4 % LAYERS, "i": 4 // LAYERS}})).json()
    assert "errors" not in r, r
    n = r["data"]["neuron"]
    assert n["topology"]["degree"] == 2 and n["circuitTopology"]["degree"] == 5
    assert (n["circuitRole"], n["circuitCommunity"]) == (by[4]["cr"], by[4]["cc"]) == (
        n["circuitTopology"]["role"], n["circuitTopology"]["community"])
    assert n["role"] == by[4]["r"] and n["community"] == by[4]["c"]  # the plain ones: their own props

    # the circuits shrink to the first clique: the second's neurons lose their circuit props only
    await store.query("delete_attributes", model="circ")
    await store.write("upsert_attributes", rows[:10])
    await compute_topology(store, "circ", kinds=CIRCUIT_TOPOLOGY_KINDS, prefix=CIRCUIT_TOPOLOGY_PREFIX, per_node=None)
    left = await store.run("MATCH (n:Neuron {model: 'circ'}) WHERE n.circuit_role IS NULL RETURN count(n) AS n, "
                           "count(n.role) AS plain")
    assert left == [{"n": 5, "plain": 5}]
    with pytest.raises(ValueError, match="topology prefix"):
        await compute_topology(store, "circ", prefix="other_")
