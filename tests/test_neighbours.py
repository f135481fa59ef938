"""Neighbour lists (neurograph/neighbours.py) on a real FalkorDB: a neighbourhood read through
them is the one a plain reading of every edge gives; writes forget the lists they make stale;
corpus circuits (ATTRIBUTES_TO) are a kind of their own in the neighbourhood."""

from __future__ import annotations

import random

import httpx
import pytest

from loaders.synthetic import write_synthetic_graph
from neurograph.api import create_app
from neurograph.api.graph import MAX_NODES, neighborhood
from neurograph.domain import neuron_key
from neurograph.neighbours import DEFAULT_K, TRAVERSED_KINDS, build_neighbour_lists

MODEL = "synth"


@pytest.fixture
async def graph(store):
    await write_synthetic_graph(store, MODEL, n_layers=4, d_mlp=24, n_heads=3, d_vocab=60, k=4, seed=3)
    rng = random.Random(7)  # corpus circuits between neurons, as `neurograph circuits` writes them
    rows = [{"src": neuron_key(MODEL, l, rng.randrange(24)), "dst": neuron_key(MODEL, l + 1, rng.randrange(24)),
             "mean": rng.uniform(-2, 2), "abs_mean": 1.0, "count": 3} for l in range(3) for _ in range(20)]
    await store.write("upsert_attributes", rows)
    return store


async def every_edge(store) -> list[dict]:
    """The traversed edges between units, read one by one: what the reference walks."""
    return await store.run(
        "MATCH (a)-[e]->(b) WHERE (a:Neuron OR a:Head) AND (b:Neuron OR b:Head) AND type(e) IN $types "
        "RETURN a.key AS a, b.key AS b, type(e) AS type, e.kind AS kind, e.weight AS w",
        {"types": list(TRAVERSED_KINDS)})


def reference(edges: list[dict], start: str, *, depth: int, per_node: int, per_kind: bool,
              kinds: set | None, min_weight: float | None) -> tuple[set, set]:
    """The neighbourhood by its definition: from each unit, per (type, kind, direction) group the
    per_node strongest by |weight| (ties by the other end's key), or the per_node strongest of
    all; breadth first, depth levels."""
    groups: dict[str, dict[tuple, list]] = {}
    for e in edges:
        if (kinds is not None and e["kind"] not in kinds) or (min_weight is not None and abs(e["w"]) < min_weight):
            continue
        for unit, other, out in ((e["a"], e["b"], True), (e["b"], e["a"], False)):
            if "H" in unit.split("/", 1)[1] and e["type"] != "HEAD_COMPOSES":
                continue  # a head's neighbourhood follows its neurons only
            groups.setdefault(unit, {}).setdefault((e["type"], e["kind"], out), []).append((other, e))
    nodes, found, frontier = {start}, set(), [start]
    for _ in range(depth):
        nxt = []
        for unit in frontier:
            ranked = [sorted(g, key=lambda p: (-abs(p[1]["w"]), p[0])) for g in groups.get(unit, {}).values()]
            picked = [p for g in ranked for p in g[:per_node]] if per_kind else \
                sorted((p for g in ranked for p in g), key=lambda p: (-abs(p[1]["w"]), p[0]))[:per_node]
            for other, e in picked:
                found.add((e["a"], e["b"], e["type"], e["kind"], round(e["w"], 6)))
                if other not in nodes:
                    nodes.add(other)
                    nxt.append(other)
        frontier = nxt
    return nodes, found


def as_sets(sub) -> tuple[set, set]:
    return set(sub.nodes), {(e["source"], e["target"], e["type"], e["kind"], round(e["weight"], 6))
                            for e in sub.edges.values()}


CASES = [  # depth, per_node, per_kind, kinds, min_weight
    (1, 3, True, None, None), (2, 2, True, None, None), (3, 1, True, None, None), (2, 3, False, None, None),
    (2, 2, True, {"virtual", "pearson"}, None), (2, 4, True, {"neuron"}, None), (2, 2, True, None, 0.5),
    (1, DEFAULT_K, True, None, None), (2, DEFAULT_K + 2, True, None, None),
]


async def test_lists_give_the_neighbourhood_the_graph_gives(graph):
    store = graph
    edges = await every_edge(store)
    assert {e["type"] for e in edges} == set(TRAVERSED_KINDS)
    heads = await store.query("model_heads", model=MODEL, layer=None)
    starts = [neuron_key(MODEL, 1, 4), neuron_key(MODEL, 0, 0), neuron_key(MODEL, 3, 23), heads[0]["h"]["key"]]
    cut = 0
    for with_lists in (False, True):
        if with_lists:
            report = await build_neighbour_lists(store, MODEL)
            assert report["units"] == 4 * 24 + 4 * 3
            k, lists = await store.neighbour_lists(starts)
            assert k == DEFAULT_K and all(lists)
        for start in starts:
            label = "Head" if "H" in start.split("/", 1)[1] else "Neuron"
            for depth, per_node, per_kind, kinds, min_weight in CASES:
                sub = await neighborhood(store, [{"key": start, "_label": label}], depth=depth, per_node=per_node,
                                         per_kind=per_kind, kinds=sorted(kinds) if kinds else None,
                                         min_weight=min_weight)
                want = reference(edges, start, depth=depth, per_node=per_node, per_kind=per_kind, kinds=kinds,
                                 min_weight=min_weight)
                assert not sub.truncated and len(sub.nodes) < MAX_NODES
                assert as_sets(sub) == want, (with_lists, start, depth, per_node, per_kind, kinds, min_weight)
                cut += len(want[1]) < sum(1 for e in edges if start in (e["a"], e["b"]))
                # Every unit comes with the properties the graph gives it, whichever way it came.
                assert all(n.get("_label") in ("Neuron", "Head") and n.get("model") == MODEL and "interest" in n
                           for k_, n in sub.nodes.items() if k_ != start)
    assert cut  # the cases do leave edges out: a per-node limit that kept all would prove nothing


async def test_the_node_budget_goes_round_the_frontier(graph, settings):
    store = graph
    from neurograph.cli import _lists_of  # `neurograph neighbours`: every model in the graph

    [made] = await _lists_of(settings, None)
    assert made["model"] == MODEL and made["units"] == 4 * 24 + 4 * 3
    # `neurograph demo` (and circuits) make the lists units lack: only those.
    from neurograph.cli import _lists_of

    gone = [neuron_key(MODEL, 0, 0), neuron_key(MODEL, 3, 23)]
    before = (await store.neighbour_lists(gone))[1]
    await store.forget_neighbour_lists(gone)
    [made] = await _lists_of(settings, None, missing=True)
    assert made["units"] == 2 and (await store.neighbour_lists(gone))[1] == before
    await store.forget_neighbour_lists()  # a graph built before lists existed: all of them
    [made] = await _lists_of(settings, None, missing=True)
    assert made["units"] == 4 * 24 + 4 * 3
    start = {"key": neuron_key(MODEL, 1, 4), "_label": "Neuron"}
    full = await neighborhood(store, [start], depth=2, per_node=2)
    one = await neighborhood(store, [start], depth=1, per_node=2)
    budget = len(one.nodes) + 5
    sub = await neighborhood(store, [start], depth=2, per_node=2, max_nodes=budget)
    assert sub.truncated and not full.truncated and len(sub.nodes) == budget < len(full.nodes)
    assert set(sub.nodes) <= set(full.nodes)
    assert all(e["source"] in sub.nodes and e["target"] in sub.nodes for e in sub.edges.values())
    # Depth 1 fits whole, so the cut fell on depth 2: its 5 places went to 5 different units'
    # strongest edges, not to the first unit's every edge.
    assert set(one.nodes) <= set(sub.nodes)
    second = [e for e in sub.edges.values() if {e["source"], e["target"]} - set(one.nodes)]
    reached_from = {e["source"] if e["target"] not in one.nodes else e["target"] for e in second}
    assert len(reached_from) >= 3


async def test_writes_forget_the_lists_they_make_stale(graph):
    store = graph
    await build_neighbour_lists(store, MODEL)
    a, b, c = neuron_key(MODEL, 0, 1), neuron_key(MODEL, 2, 5), neuron_key(MODEL, 3, 3)
    # A library write that touches no edge keeps them.
    await store.write("upsert_explanations", [{"key": "x1", "neuron": a, "source": "test", "text": "t", "score": 0.5,
                                               "scores": {}}])
    assert all((await store.neighbour_lists([a, b, c]))[1])
    await store.write("upsert_composes", [{"src": a, "dst": b, "kind": "virtual", "weight": 99.0, "rank": 0}])
    _, lists = await store.neighbour_lists([a, b, c])
    assert lists[0] is None and lists[1] is None and lists[2] is not None
    sub = await neighborhood(store, [{"key": a, "_label": "Neuron"}], depth=1, per_node=1, kinds=["virtual"])
    assert (a, b, "COMPOSES", "virtual") in sub.edges  # read from the graph: the new edge is there
    # A delete that says which units it touched (N2G's SIMILAR edges, recomputed) forgets those.
    similar = await store.run("MATCH (x:Neuron)-[:SIMILAR]->(y:Neuron) RETURN x.key AS x, y.key AS y", {})
    assert similar
    await store.write("delete_similar_n2g", [{"model": MODEL}])
    _, lists = await store.neighbour_lists([similar[0]["x"], similar[0]["y"], c])
    assert lists[0] is None and lists[1] is None and lists[2] is not None
    # A statement the library does not know (a power user's) may touch anything: all go.
    await store.run("MATCH (x:Neuron {key: $c})-[e]->() SET e.weight = 0.0", {"c": c}, write=True)
    _, lists = await store.neighbour_lists([c])
    assert lists == [None]


async def test_circuits_are_a_kind_of_their_own_in_the_neighbourhood(graph, settings):
    store = graph
    row = (await store.run("MATCH (a:Neuron)-[e:ATTRIBUTES_TO]->(b:Neuron) RETURN a.key AS a, b.key AS b "
                           "ORDER BY abs(e.weight) DESC LIMIT 1", {}))[0]
    query = ("query($id: ID!, $kinds: [String!]) { neighborhood(id: $id, depth: 1, perNode: 3, kinds: $kinds) "
             "{ edges { source target type kind } } }")
    app = create_app(settings, store, web_dir=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for kinds in (None, ["neuron"]):
            body = (await client.post("/graphql", json={"query": query, "variables": {"id": row["a"], "kinds": kinds}})).json()
            edges = body["data"]["neighborhood"]["edges"]
            circuit = [e for e in edges if e["type"] == "ATTRIBUTES_TO"]
            assert {"source": row["a"], "target": row["b"], "type": "ATTRIBUTES_TO", "kind": "neuron"} in circuit
            if kinds:
                assert circuit == edges
        body = (await client.post("/graphql", json={"query": query, "variables": {"id": row["a"], "kinds": ["logit"]}})).json()
        assert "unknown edge kinds: logit" in body["errors"][0]["message"] and "neuron" in body["errors"][0]["message"]


async def test_a_listing_reads_first_inputs_and_outputs_from_the_lists(graph, settings):
    store = graph
    page = ("query($n: Int!, $kinds: [String!]) { neurons(model: \"synth\", first: 40) { edges { node { key "
            "outputs(first: $n, kinds: $kinds) { edges { kind weight node { key } } } "
            "inputs(first: $n) { edges { kind weight node { key layer } } } } } } }")
    counted = ("query { neurons(model: \"synth\", first: 40) { edges { node { key "
               "inputs(first: 2) { totalCount pageInfo { hasNextPage } edges { kind weight rank node { key } } } } } } }")
    app = create_app(settings, store, web_dir=None, cache_entries=0)  # no answer cache: every answer resolved
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        async def ask(query: str, **variables) -> tuple[dict, int]:
            before = store.round_trips
            body = (await client.post("/graphql", json={"query": query, "variables": variables})).json()
            assert not body.get("errors"), body["errors"]
            return body["data"], store.round_trips - before

        cases = [{"n": 3, "kinds": None}, {"n": 1, "kinds": ["virtual"]}, {"n": DEFAULT_K, "kinds": ["out_in", "virtual"]}]
        plain = [await ask(page, **v) for v in cases]
        whole = await ask(counted)
        await build_neighbour_lists(store, MODEL)
        for v, (want, trips) in zip(cases, plain):
            got, fewer = await ask(page, **v)
            assert fewer == trips - 1  # no edge query: the lists answered
            for a, b in zip(got["neurons"]["edges"], want["neurons"]["edges"]):
                for field in ("outputs", "inputs"):
                    ga, gb = a["node"][field]["edges"], b["node"][field]["edges"]
                    assert [(e["kind"], e["node"]) for e in ga] == [(e["kind"], e["node"]) for e in gb]
                    assert [e["weight"] for e in ga] == pytest.approx([e["weight"] for e in gb], rel=1e-8)
        assert any(e["node"]["outputs"]["edges"] for e in got["neurons"]["edges"])
        # Counts, pages and ranks need every edge: read from the graph as before.
        assert await ask(counted) == whole


async def test_neuron_pages_run_across_layers_in_order(graph, settings):
    """A page reads its cursor's layer first and the later layers only when it runs past it:
    paging visits every neuron once, in (layer, index) order, whatever the page size."""
    store = graph
    want = [neuron_key(MODEL, l, i) for l in range(4) for i in range(24)]
    query = ("query($first: Int!, $after: String, $layer: Int) { neurons(model: \"synth\", first: $first, "
             "after: $after, layer: $layer) { pageInfo { hasNextPage endCursor } edges { node { key } } } }")
    app = create_app(settings, store, web_dir=None, cache_entries=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for first, layer in ((7, None), (24, None), (50, None), (5, 2)):
            seen, after = [], None
            while True:
                body = (await client.post("/graphql", json={"query": query, "variables": {
                    "first": first, "after": after, "layer": layer}})).json()
                conn = body["data"]["neurons"]
                seen += [e["node"]["key"] for e in conn["edges"]]
                assert len(conn["edges"]) == first or not conn["pageInfo"]["hasNextPage"]
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = conn["pageInfo"]["endCursor"]
            assert seen == [k for k in want if layer is None or k.startswith(f"{MODEL}/{layer}/")]
