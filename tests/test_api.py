"""The GraphQL API on a real FalkorDB with a synthetic graph: every example operation,
traversals, paths, pagination, bounded round trips, limits and clear errors."""

from __future__ import annotations

import asyncio

from pathlib import Path

import httpx
import pytest
from graphql import parse

from loaders.synthetic import write_synthetic_graph
from neurograph.api import create_app, schema
from neurograph.api.ids import to_global_id
from neurograph.domain import neuron_key

ROOT = Path(__file__).resolve().parents[1]
OPS = sorted(p for p in (ROOT / "graphql").glob("*.graphql") if p.name != "schema.graphql")
MODEL = "synth"


@pytest.fixture
async def graph(store):
    info = await write_synthetic_graph(store, MODEL, n_layers=4, d_mlp=24, n_heads=3, d_vocab=120, k=4, seed=1)
    return info


@pytest.fixture
async def client(store, settings, graph):
    app = create_app(settings, store)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def gql(client: httpx.AsyncClient, query: str, variables: dict | None = None, *, ok: bool = True,
              headers: dict | None = None) -> dict:
    r = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {})
    body = r.json()
    if ok:
        assert r.status_code == 200, body
        assert not body.get("errors"), body["errors"]
    return body


def op(name: str) -> str:
    return (ROOT / "graphql" / f"{name}.graphql").read_text()


async def one(store, text: str, **params) -> list[dict]:
    return await store.run(text, params)


# --- the contract ---------------------------------------------------------------------------


def test_exported_sdl_matches_the_code():
    exported = (ROOT / "graphql" / "schema.graphql").read_text().strip()
    assert exported == schema.as_str().strip(), "graphql/schema.graphql is stale: python -m neurograph.api.schema > graphql/schema.graphql"


def test_every_example_operation_is_covered_below():
    names = {p.stem for p in OPS}
    assert names == set(VARIABLES), f"add variables and checks for: {names ^ set(VARIABLES)}"
    for p in OPS:  # one named operation per file
        doc = parse(p.read_text())
        assert [d.name.value for d in doc.definitions if d.kind == "operation_definition"]


async def _a_pattern_token(store) -> tuple[str, str]:
    rows = await one(store, "MATCH (n:Neuron)-[:HAS_PATTERN]->(p:PatternNode {role: 'activating'}) "
                            "RETURN n.key AS key, p.token AS token ORDER BY n.key LIMIT 1")
    return rows[0]["key"], rows[0]["token"]


VARIABLES: dict[str, dict] = {
    "models": {}, "model": {"name": MODEL}, "neuron": {"model": MODEL, "layer": 1, "index": 2},
    "neuron_page": {"model": MODEL, "layer": 1, "index": 2},
    "examples_page": {"model": MODEL, "layer": 1, "index": 2, "first": 2},
    "neuron_connections": {"model": MODEL, "layer": 1, "index": 2, "first": 3, "outputs": True},
    "neurons_page": {"model": MODEL, "first": 7}, "two_hops": {"model": MODEL, "layer": 0, "index": 3},
    "node": {"id": to_global_id("Neuron", neuron_key(MODEL, 2, 5))},
    "neighborhood": {"id": to_global_id("Neuron", neuron_key(MODEL, 1, 4)), "depth": 2, "perNode": 4},
    "paths": {"from": to_global_id("Neuron", neuron_key(MODEL, 0, 0)),
              "to": to_global_id("Neuron", neuron_key(MODEL, 2, 0)), "maxHops": 3},
    "search_tokens": {"model": MODEL}, "search_explanations": {"query": "fires", "model": MODEL, "first": 5},
    "cypher": {"query": "MATCH (n:Neuron {model: $m}) RETURN n.key AS key, n.layer AS layer ORDER BY key LIMIT 5",
               "params": {"m": MODEL}},
    "add_explanation": {"model": MODEL, "layer": 3, "index": 1, "text": "a test explanation about rivers"},
    "available_stats": {"name": MODEL, "prop": "un_sparsity", "first": 5},
    "head": {"model": MODEL, "layer": 1, "head": 2, "first": 100},
}


async def test_models_and_model(client, store, graph):
    data = (await gql(client, op("models")))["data"]["models"]
    assert [m["name"] for m in data] == [MODEL]
    assert data[0]["neuronCount"] == graph.n_layers * graph.d_mlp
    assert [l["layer"] for l in data[0]["layers"]] == list(range(graph.n_layers))
    m = (await gql(client, op("model"), VARIABLES["model"]))["data"]["model"]
    assert m["metadata"]["d_vocab"] == graph.d_vocab
    top = await one(store, "MATCH (n:Neuron {model: $m}) RETURN n.key AS key ORDER BY n.interest DESC LIMIT 5", m=MODEL)
    assert [n["key"] for n in m["interesting"]] == [r["key"] for r in top]
    for layer in m["layers"]:
        interests = [n["interest"] for n in layer["interesting"]]
        assert interests == sorted(interests, reverse=True) and len(interests) == 3


async def test_neuron_page_matches_the_graph(client, store):
    v = VARIABLES["neuron"]
    n = (await gql(client, op("neuron"), v))["data"]["neuron"]
    key = neuron_key(MODEL, v["layer"], v["index"])
    props = (await one(store, "MATCH (n:Neuron {key: $k}) RETURN n", k=key))[0]["n"]
    assert n["key"] == key and n["stats"]["kurt"] == props["kurt"] and n["stats"]["fracActive"] == props["frac_active"]
    assert len(n["histogram"]["edges"]) == len(n["histogram"]["counts"]) + 1
    assert n["role"] == props["role"] and n["topology"]["community"] == props["community"]
    # examples: top ranks in order, activations per token, pivot inside
    ex = n["examples"]
    n_max = (await one(store, "MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max'}]->() RETURN count(a) AS c",
                       k=key))[0]["c"]
    assert ex["totalCount"] == n_max
    for e in ex["edges"]:
        node = e["node"]
        assert len(node["tokens"]) == len(node["activations"]) and 0 <= node["pivot"] < len(node["tokens"])
        assert node["activations"][node["pivot"]] == max(node["activations"])
    assert [e["node"]["rank"] for e in ex["edges"]] == sorted(e["node"]["rank"] for e in ex["edges"])
    # outputs: the stored COMPOSES edges, by |weight|
    stored = await one(store, "MATCH (:Neuron {key: $k})-[e:COMPOSES]->(m) RETURN m.key AS key, e.weight AS w", k=key)
    want = sorted(stored, key=lambda r: -abs(r["w"]))[:5]
    assert [(e["node"]["key"], e["weight"]) for e in n["outputs"]["edges"]] == [(r["key"], r["w"]) for r in want]
    assert n["outputs"]["totalCount"] == len(stored)
    ins = await one(store, "MATCH (m)-[e:COMPOSES]->(:Neuron {key: $k}) RETURN count(e) AS c", k=key)
    assert n["inputs"]["totalCount"] == ins[0]["c"]
    assert all(e["kind"] == "input" for e in n["inputTokens"]["edges"]) and n["inputTokens"]["edges"]
    assert all(e["kind"] == "output" for e in n["outputTokens"]["edges"])
    w = [e["weight"] for e in n["activationTokens"]["edges"]]
    assert w == sorted(w, reverse=True)
    assert n["heads"]["edges"] and all(e["kind"] in "QKVO" for e in n["heads"]["edges"])
    assert all(e["outgoing"] == (e["kind"] != "O") for e in n["heads"]["edges"])
    assert n["explanations"] and n["explanations"][0]["text"].startswith("fires on")
    # N2G pattern of an even-index neuron
    assert n["pattern"] is not None and n["pattern"]["scores"]["n2g_firing_f1"] == props["n2g_firing_f1"]
    assert len(n["pattern"]["edges"]) == len(n["pattern"]["nodes"]) - 1
    assert n["pattern"]["nodes"][0]["role"] == "activating" and n["pattern"]["nodes"][0]["matches"]
    assert n["correlated"]["edges"] and n["similar"]["edges"] is not None


async def test_the_uis_neuron_page_operation_agrees_with_the_neuron_operation(client):
    page = (await gql(client, op("neuron_page"), VARIABLES["neuron_page"]))["data"]["neuron"]
    full = (await gql(client, op("neuron"), {**VARIABLES["neuron"], "first": 20}))["data"]["neuron"]
    assert page["key"] == full["key"] and page["stats"] == full["stats"] and page["histogram"] == full["histogram"]
    assert [e["node"]["key"] for e in page["maxExamples"]["edges"]] == [e["node"]["key"] for e in full["examples"]["edges"]]
    assert page["minExamples"]["edges"] and page["randomExamples"]["totalCount"] == full["randomExamples"]["totalCount"]
    for conn in ("inputs", "outputs"):
        assert page[conn]["totalCount"] == full[conn]["totalCount"]
    assert {e["node"]["key"] for e in page["correlated"]["edges"]} == {e["node"]["key"] for e in full["correlated"]["edges"]}
    assert page["pattern"]["scores"] == full["pattern"]["scores"]
    # the web UI loads the operation from the server
    r = await client.get("/operations/neuron_page.graphql")
    assert r.status_code == 200 and r.text == op("neuron_page")


async def test_examples_pagination(client):
    v = VARIABLES["examples_page"]
    first = (await gql(client, op("examples_page"), v))["data"]["neuron"]["examples"]
    assert first["pageInfo"]["hasNextPage"] and len(first["edges"]) == 2
    rest = (await gql(client, op("examples_page"), {**v, "after": first["pageInfo"]["endCursor"]}))
    rest = rest["data"]["neuron"]["examples"]
    ranks = [e["node"]["rank"] for e in first["edges"] + rest["edges"]]
    assert ranks == list(range(first["totalCount"])) and not rest["pageInfo"]["hasNextPage"]


async def test_neuron_connections_page_on_from_the_neuron_page(client):
    """The UI's "More": neuron_connections.graphql continues a neuron_page list at its endCursor."""
    page = (await gql(client, op("neuron_page"), VARIABLES["neuron_page"]))["data"]["neuron"]
    v = VARIABLES["neuron_connections"]
    whole = (await gql(client, op("neuron_connections"), {**v, "first": 100}))["data"]["neuron"]
    assert set(whole) == {"key", "outputs"}  # only the list asked for
    keys = [e["node"]["key"] for e in whole["outputs"]["edges"]]
    assert len(keys) == whole["outputs"]["totalCount"] == page["outputs"]["totalCount"] > 3
    first = (await gql(client, op("neuron_connections"), v))["data"]["neuron"]["outputs"]
    rest = (await gql(client, op("neuron_connections"), {**v, "first": 100, "after": first["pageInfo"]["endCursor"]}))
    rest = rest["data"]["neuron"]["outputs"]
    assert [e["node"]["key"] for e in first["edges"] + rest["edges"]] == keys
    assert first["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"]


CONNECTIONS = {  # field -> (selection, relationship and direction the store holds them as)
    "inputs": ("node { key }", "MATCH (n)<-[e:COMPOSES]-()"),
    "outputs": ("node { key }", "MATCH (n)-[e:COMPOSES]->()"),
    "heads": ("outgoing node { key }", "MATCH (n)-[e:HEAD_COMPOSES]-()"),
    "tokens": ("node { key }", "MATCH (n)-[e:TOKEN_EFFECT]->()"),
    "attributes": ("node { key }", "MATCH (n)-[e:ATTRIBUTES_TO {kind: 'neuron'}]->()"),
    "attributedBy": ("node { key }", "MATCH (n)<-[e:ATTRIBUTES_TO {kind: 'neuron'}]-()"),
}


async def test_every_connection_pages_past_20_alike(store, settings):
    """Neurons with more than 20 edges of a kind: each list pages with first/after to its end,
    every edge once in the order of one big page, totalCount as the store counts; the same
    bounds and cursor errors everywhere."""
    await write_synthetic_graph(store, MODEL, n_layers=3, d_mlp=32, n_heads=2, d_vocab=80, k=16, seed=3,
                                n_examples=30)
    app = create_app(settings, store, cache_entries=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://test") as c:
        async def walk(key: str, field: str, sel: str, size: int) -> tuple[list, int]:
            layer, index = (int(x) for x in key.split("/")[1:])
            q = (f"query($a: String, $f: Int!) {{ neuron(model: \"{MODEL}\", layer: {layer}, index: {index}) "
                 f"{{ c: {field}(first: $f, after: $a) {{ totalCount pageInfo {{ hasNextPage endCursor }} "
                 f"edges {{ cursor {sel} }} }} }} }}")
            seen, after, total = [], None, None
            while True:
                conn = (await gql(c, q, {"a": after, "f": size}))["data"]["neuron"]["c"]
                total = conn["totalCount"]
                seen += [{k: v for k, v in e.items() if k != "cursor"} for e in conn["edges"]]
                assert len(conn["edges"]) <= size
                if not conn["pageInfo"]["hasNextPage"]:
                    return seen, total
                after = conn["pageInfo"]["endCursor"]
                assert after == conn["edges"][-1]["cursor"]

        checked = 0
        for field, (sel, pattern) in CONNECTIONS.items():
            rows = await one(store, f"MATCH (n:Neuron {{model: $m}}) {pattern} WITH n, count(e) AS c "
                                    "RETURN n.key AS key, c ORDER BY c DESC, key LIMIT 1", m=MODEL)
            key, stored = rows[0]["key"], rows[0]["c"]
            big, total = await walk(key, field, sel, 100)
            paged, total7 = await walk(key, field, sel, 7)
            assert paged == big and total == total7 == len(big), field
            if field in ("inputs", "outputs", "tokens"):  # stored once per pair: the store's count
                assert total == stored > 20, (field, stored)
                checked += 1
        assert checked == 3
        # examples page by rank the same way
        key = (await one(store, "MATCH (n:Neuron {model: $m})-[a:ACTIVATES_ON {kind: 'max'}]->() WITH n, count(a) AS c "
                                "RETURN n.key AS key, c ORDER BY c DESC LIMIT 1", m=MODEL))[0]
        ex, total = await walk(key["key"], "examples", "node { rank }", 7)
        assert [e["node"]["rank"] for e in ex] == list(range(total)) and total == key["c"] > 20
        # One bound for every list, and a cursor from no page is refused, not misread.
        from neurograph.api.ids import encode_cursor

        for field in (*CONNECTIONS, "correlated", "similar", "examples"):
            q = f'{{ neuron(model: "{MODEL}", layer: 0, index: 0) {{ {field}(first: %s%s) {{ totalCount }} }} }}'
            assert "first must be between 0 and 100" in await error_of(c, q % (101, ""))
            for bad in ("zzz", encode_cursor(-3), encode_cursor("x")):
                assert "invalid cursor" in await error_of(c, q % (5, f', after: "{bad}"')), (field, bad)


async def test_two_hops_out_follow_stored_edges(client, store):
    v = VARIABLES["two_hops"]
    n = (await gql(client, op("two_hops"), v))["data"]["neuron"]
    hop2 = 0
    for e in n["outputs"]["edges"]:
        mid = e["node"]["key"]
        stored = await one(store, "MATCH (:Neuron {key: $a})-[e:COMPOSES {kind: $kind}]->(:Neuron {key: $b}) "
                                  "RETURN e.weight AS w", a=n["key"], b=mid, kind=e["kind"])
        assert stored and stored[0]["w"] == e["weight"]
        for e2 in e["node"]["outputs"]["edges"]:
            assert e2["node"]["layer"] > int(mid.split("/")[1])
            hop2 += 1
    assert hop2 > 0


async def _import_a_column(store, graph) -> dict[str, float]:
    """A numeric and a text column on layers 1-2, written the way importers write neuron columns."""
    rng = __import__("random").Random(7)
    values = {neuron_key(MODEL, l, i): round(rng.uniform(0, 1), 6) for l in (1, 2) for i in range(graph.d_mlp)}
    await store.write("set_neuron_props", [{"key": k, "props": {"un_sparsity": v, "un_note": "text"}}
                                            for k, v in values.items()])
    return values


async def test_available_stats_and_ranking_by_an_imported_column(client, store, graph):
    values = await _import_a_column(store, graph)
    v = VARIABLES["available_stats"]
    data = (await gql(client, op("available_stats"), v))["data"]
    stats = {s["name"]: s for s in data["model"]["availableStats"]}
    col = stats["un_sparsity"]
    assert col["stat"] is None and col["count"] == len(values)
    assert (col["min"], col["max"]) == (min(values.values()), max(values.values()))
    assert stats["kurt"]["stat"] == "KURT" and stats["kurt"]["count"] == graph.n_layers * graph.d_mlp
    # identities, categories, lists and text are not statistics
    assert not {"layer", "index", "community", "quantiles", "hist_counts", "un_note", "key"} & set(stats)
    ranked = sorted(values, key=lambda k: (-values[k], k))
    assert [n["key"] for n in data["model"]["interesting"]] == ranked[: v["first"]]
    # ascending keyset pages by the imported column visit every neuron that has it, once
    seen, after = [], None
    while True:
        conn = (await gql(client, op("available_stats"), {**v, "first": 7, "after": after}))["data"]["neurons"]
        seen += [e["node"]["props"]["un_sparsity"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == sorted(values.values())
    q = ('{ neurons(model: "synth", where: {prop: "un_sparsity", min: 0.5}, orderBy: {prop: "un_sparsity"}, '
         'first: 100) { edges { node { key } } } }')
    got = [e["node"]["key"] for e in (await gql(client, q))["data"]["neurons"]["edges"]]
    assert got == [k for k in ranked if values[k] >= 0.5]


async def test_unknown_or_non_numeric_columns_are_clear_errors(client, store, graph):
    await _import_a_column(store, graph)
    v = VARIABLES["available_stats"]
    assert "is a str, not a number" in await error_of(client, op("available_stats"), {**v, "prop": "un_note"})
    assert "has the property 'nope'" in await error_of(client, op("available_stats"), {**v, "prop": "nope"})
    for bad in ("layer", "community", "a b", "x) DELETE n //"):
        assert "invalid neuron property" in await error_of(client, op("available_stats"), {**v, "prop": bad})
    q = ('{ neurons(model: "synth", where: {prop: "un_sparsity", min: 0.5}, orderBy: {stat: KURT}) '
         '{ edges { cursor } } }')
    assert "must use the same property" in await error_of(client, q)


async def test_head_page_reads_and_writes(client, store, graph):
    v = VARIABLES["head"]
    data = (await gql(client, op("head"), v))["data"]
    head = data["head"]
    assert (head["layer"], head["head"]) == (v["layer"], v["head"])
    for field, kinds, outgoing in (("reads", {"Q", "K", "V"}, False), ("writes", {"O"}, True)):
        edges = head[field]["edges"]
        assert edges and {e["kind"] for e in edges} <= kinds and {e["outgoing"] for e in edges} == {outgoing}
        weights = [abs(e["weight"]) for e in edges]
        assert weights == sorted(weights, reverse=True)
        pattern = "(h:Head {key: $h})-[e:HEAD_COMPOSES]->(:Neuron)" if outgoing else \
            "(h:Head {key: $h})<-[e:HEAD_COMPOSES]-(:Neuron)"
        n = await one(store, f"MATCH {pattern} WHERE e.kind IN $kinds RETURN count(e) AS c",
                      h=head["key"], kinds=sorted(kinds))
        assert head[field]["totalCount"] == len(edges) == n[0]["c"]
    assert [(h["layer"], h["head"]) for h in data["model"]["heads"]] == [(v["layer"], i) for i in range(graph.n_heads)]
    everything = (await gql(client, '{ model(name: "synth") { heads { layer head } } }'))["data"]["model"]["heads"]
    assert len(everything) == graph.n_layers * graph.n_heads
    assert everything == sorted(everything, key=lambda h: (h["layer"], h["head"]))


async def test_neurons_keyset_pagination_visits_every_neuron_once(client, graph):
    seen, after, pages = [], None, 0
    while True:
        page = (await gql(client, op("neurons_page"), {"model": MODEL, "first": 10, "after": after, "edges": 1}))
        conn = page["data"]["neurons"]
        seen += [(e["node"]["layer"], e["node"]["index"]) for e in conn["edges"]]
        pages += 1
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == graph.n_layers * graph.d_mlp
    assert pages == -(-len(seen) // 10)
    # by a stat, descending, across pages; and a filter
    q = ("query($a: String) { neurons(model: \"synth\", first: 7, after: $a, orderBy: {stat: KURT}, "
         "where: {layerMin: 1, layerMax: 2}) { pageInfo { hasNextPage endCursor } edges { node { layer stats { kurt } } } } }")
    kurts, after = [], None
    while True:
        conn = (await gql(client, q, {"a": after}))["data"]["neurons"]
        kurts += [e["node"]["stats"]["kurt"] for e in conn["edges"]]
        assert all(1 <= e["node"]["layer"] <= 2 for e in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert kurts == sorted(kurts, reverse=True) and len(kurts) == 2 * graph.d_mlp


async def test_node_by_global_id_round_trips(client):
    data = (await gql(client, op("node"), VARIABLES["node"]))["data"]["node"]
    assert data["__typename"] == "Neuron" and data["key"] == neuron_key(MODEL, 2, 5)
    m = (await gql(client, op("model"), {"name": MODEL}))["data"]["model"]
    again = (await gql(client, op("node"), {"id": m["id"]}))["data"]["node"]
    assert again == {"__typename": "Model", "id": m["id"], "name": MODEL}
    n = (await gql(client, "{ neuron(model: \"synth\", layer: 1, index: 2) { explanations { id text } "
                           "heads(first: 1) { edges { node { id key } } } tokens(first: 1) { edges { node { id text } } } } }"))
    n = n["data"]["neuron"]
    x, h, t = n["explanations"][0], n["heads"]["edges"][0]["node"], n["tokens"]["edges"][0]["node"]
    for ref, want in ((x["id"], {"text": x["text"]}), (h["id"], {"key": h["key"]}), (t["id"], {"text": t["text"]})):
        got = (await gql(client, op("node"), {"id": ref}))["data"]["node"]
        assert got["id"] == ref and want.items() <= got.items()


async def test_neighborhood_two_hops_is_a_drawable_subgraph(client, store):
    v = VARIABLES["neighborhood"]
    sub = (await gql(client, op("neighborhood"), v))["data"]["neighborhood"]
    keys = {n["key"] for n in sub["nodes"]}
    assert neuron_key(MODEL, 1, 4) in keys and len(keys) == len(sub["nodes"])
    assert all(e["source"] in keys and e["target"] in keys for e in sub["edges"])
    # two hops: some node is not adjacent to the start
    start = neuron_key(MODEL, 1, 4)
    adjacent = {e["source"] for e in sub["edges"] if e["target"] == start} | \
               {e["target"] for e in sub["edges"] if e["source"] == start}
    assert keys - adjacent - {start}
    # every edge is stored with that weight
    for e in sub["edges"][:10]:
        rows = await one(store, f"MATCH (a {{key: $s}})-[e:{e['type']}]->(b {{key: $t}}) RETURN e.weight AS w",
                         s=e["source"], t=e["target"])
        assert e["weight"] in [r["w"] for r in rows]
    only = (await gql(client, op("neighborhood"), {**v, "kinds": ["virtual"], "depth": 1}))["data"]["neighborhood"]
    assert only["edges"] and all(e["kind"] == "virtual" for e in only["edges"])


async def test_neighborhood_ranks_each_kind_on_its_own(client, store):
    # Virtual weights 100x the rest, as on real graphs (5-20 against cosines <= 1): ranked over
    # all kinds they fill every slot; ranked per kind, every stored kind and direction shows.
    start = neuron_key(MODEL, 1, 4)
    await store.run("MATCH ()-[e:COMPOSES {kind: 'virtual'}]->() SET e.weight = e.weight * 100", {}, write=True)
    stored = await one(store, "MATCH (n:Neuron {key: $k})-[e]-(m) WHERE (m:Neuron OR m:Head) "
                              "AND type(e) IN ['COMPOSES', 'CORRELATES', 'SIMILAR', 'HEAD_COMPOSES'] "
                              "RETURN e.kind AS kind, startNode(e).key = $k AS out", k=start)
    groups = {(r["kind"], r["out"]) for r in stored}
    assert len({k for k, _ in groups}) >= 3 and {o for _, o in groups} == {True, False}
    v = {"id": to_global_id("Neuron", start), "depth": 1, "perNode": 2}
    sub = (await gql(client, op("neighborhood"), v))["data"]["neighborhood"]
    seen = {(e["kind"], e["source"] == start) for e in sub["edges"]}
    assert seen == groups
    count = {g: sum((e["kind"], e["source"] == start) == g for e in sub["edges"]) for g in groups}
    want = {g: min(2, sum((r["kind"], r["out"]) == g for r in stored)) for g in groups}
    assert count == want
    # Over all kinds: the 2 strongest, both virtual.
    flat = (await gql(client, op("neighborhood"), {**v, "perKind": False}))["data"]["neighborhood"]
    assert [e["kind"] for e in flat["edges"]] == ["virtual", "virtual"]
    # Edges name their ends by id too: the ids of the nodes they join.
    ids = {n["key"]: n["id"] for n in sub["nodes"]}
    assert all(e["sourceId"] == ids[e["source"]] and e["targetId"] == ids[e["target"]] for e in sub["edges"])


async def test_paths_are_connected_and_strongest_first(client):
    v = VARIABLES["paths"]
    paths = (await gql(client, op("paths"), v))["data"]["paths"]
    assert paths, "the synthetic graph connects layer 0 to layer 2"
    for p in paths:
        keys = [n["key"] for n in p["nodes"]]
        assert keys[0] == neuron_key(MODEL, 0, 0) and keys[-1] == neuron_key(MODEL, 2, 0)
        assert p["hops"] == len(p["edges"]) == len(keys) - 1 <= v["maxHops"]
        for (a, b), e in zip(zip(keys, keys[1:]), p["edges"]):
            assert {e["source"], e["target"]} == {a, b}
    strengths = [p["strength"] for p in paths]
    assert strengths == sorted(strengths, reverse=True)


async def test_search_tokens_and_explanations(client, store):
    key, token = await _a_pattern_token(store)
    hits = (await gql(client, op("search_tokens"), {"model": MODEL, "activating": [token]}))["data"]["searchTokens"]
    assert key in [h["neuron"]["key"] for h in hits]
    # Spaces count (" the" and "the" are different tokens; every synthetic token has one), case does not.
    assert token.startswith(" ")
    upper = (await gql(client, op("search_tokens"), {"model": MODEL, "activating": [token.upper()]}))["data"]
    assert key in [h["neuron"]["key"] for h in upper["searchTokens"]]
    bare = (await gql(client, op("search_tokens"), {"model": MODEL, "activating": [token.strip()]}))["data"]
    assert bare["searchTokens"] == []
    text = (await one(store, "MATCH (n:Neuron {key: $k})-[:EXPLAINED_BY]->(x) RETURN x.text AS t", k=key))[0]["t"]
    word = text.split()[2]  # "fires on <word> after ..."
    found = (await gql(client, op("search_explanations"), {"query": word, "model": MODEL, "first": 50}))
    found = found["data"]["searchExplanations"]
    assert key in [h["neuron"]["key"] for h in found]
    assert all(word.lower() in h["explanation"]["text"].lower() for h in found)


async def test_cypher_read_only(client, store):
    res = (await gql(client, op("cypher"), VARIABLES["cypher"]))["data"]["cypher"]
    want = await one(store, VARIABLES["cypher"]["query"], m=MODEL)
    assert res["columns"] == ["key", "layer"] and res["rows"] == [[r["key"], r["layer"]] for r in want]
    many = (await gql(client, op("cypher"), {"query": "UNWIND range(1, 5000) AS x RETURN x"}))["data"]["cypher"]
    assert many["truncated"] and len(many["rows"]) == 1000


async def test_add_explanation_writes_from_loopback(client, store):
    v = VARIABLES["add_explanation"]
    e = (await gql(client, op("add_explanation"), v))["data"]["addExplanation"]
    rows = await one(store, "MATCH (:Neuron {key: $k})-[:EXPLAINED_BY]->(x {key: $x}) RETURN x.text AS t",
                     k=neuron_key(MODEL, 3, 1), x=e["key"])
    assert rows == [{"t": v["text"]}]


# --- bounded work ---------------------------------------------------------------------------


async def test_round_trips_do_not_grow_with_page_size(client, store):
    async def trips(first: int) -> int:
        before = store.round_trips
        body = await gql(client, op("neurons_page"), {"model": MODEL, "first": first, "edges": 5})
        assert len(body["data"]["neurons"]["edges"]) == first
        return store.round_trips - before

    small, large = await trips(10), await trips(50)
    # 24 neurons a layer: the page of 50 runs past its first layer, read in one more round trip
    # (a page reads its cursor's layer first, then, only if short, the later ones at once).
    assert small + 1 == large <= 6


# --- errors ---------------------------------------------------------------------------------


async def error_of(client, query: str, variables: dict | None = None, **kw) -> str:
    body = await gql(client, query, variables, ok=False, **kw)
    assert body.get("errors"), body
    return body["errors"][0]["message"]


async def test_clear_errors(client, store):
    q_neuron = op("neuron")
    assert "unknown model 'nope'" in await error_of(client, q_neuron, {"model": "nope", "layer": 0, "index": 0})
    assert "no neuron 'synth/0/999'" in await error_of(client, q_neuron, {"model": MODEL, "layer": 0, "index": 999})
    assert "invalid model name" in await error_of(client, q_neuron, {"model": "a b", "layer": 0, "index": 0})
    assert "not a NeuroGraph id" in await error_of(client, op("node"), {"id": "garbage!!"})
    assert "not a NeuroGraph id" in await error_of(client, op("node"), {"id": to_global_id("Neuron", "x")[:-3]})
    assert "not a neuron key" in await error_of(client, op("node"), {"id": to_global_id("Neuron", "x/y")})
    assert "unknown model" in await error_of(client, op("model"), {"name": "nope"})
    assert "invalid cursor" in await error_of(client, op("neurons_page"), {"model": MODEL, "after": "zzz"})
    assert "first must be between" in await error_of(client, '{ neurons(model: "synth", first: 1000) { edges { cursor } } }')
    assert "unknown edge kinds" in await error_of(client, op("neighborhood"),
                                                  {"id": neuron_key(MODEL, 0, 0), "kinds": ["bogus"]})
    assert "depth must be" in await error_of(client, op("neighborhood"), {"id": neuron_key(MODEL, 0, 0), "depth": 9})
    assert "Cannot query field" in await error_of(client, "{ nope }")


async def test_cypher_writes_are_refused_and_change_nothing(client, store):
    before = await one(store, "MATCH (n) RETURN count(n) AS c")
    for text in ("CREATE (:Neuron {key: 'x'})", "MATCH (n) DETACH DELETE n", "MATCH (n:Neuron) SET n.x = 1",
                 "MERGE (a:Model {key: 'evil'})", "CALL db.idx.fulltext.drop('Explanation')"):
        msg = await error_of(client, op("cypher"), {"query": text})
        assert "read-only" in msg
    # a syntax error is named by the grammar, with its place, before anything reaches the engine
    assert "line 1, column 10" in await error_of(client, op("cypher"), {"query": "MATCH (n RETURN n"})
    assert await one(store, "MATCH (n) RETURN count(n) AS c") == before


async def test_depth_cost_and_alias_bombs_are_refused(client):
    nest = "node { key }"
    for _ in range(8):
        nest = f"node {{ outputs(first: 2) {{ edges {{ {nest} }} }} }}"
    deep = f"{{ neuron(model: \"synth\", layer: 0, index: 0) {{ outputs {{ edges {{ {nest} }} }} }} }}"
    assert "exceeds maximum operation depth" in await error_of(client, deep)
    costly = ("{ neurons(model: \"synth\", first: 100) { edges { node { outputs(first: 100) { edges { node { "
              "outputs(first: 100) { edges { node { key } } } } } } } } } }")
    assert "query cost" in await error_of(client, costly)
    via_vars = ("query($f: Int!) { neurons(model: \"synth\", first: $f) { edges { node { outputs(first: $f) { "
                "edges { node { correlated(first: $f) { edges { node { key } } } } } } } } } }")
    assert "query cost" in await error_of(client, via_vars, {"f": 100})
    # huge perNode ** depth must be refused at once, not computed as an enormous integer
    huge = "{ neighborhood(id: \"x\", depth: 2147483647, perNode: 2147483647) { truncated } }"
    assert "query cost" in await asyncio.wait_for(error_of(client, huge), timeout=30)
    aliases = "{ " + " ".join(f"a{i}: models {{ name }}" for i in range(40)) + " }"
    assert "aliases" in await error_of(client, aliases)


async def test_oversized_request_is_a_clear_413(client):
    r = await client.post("/graphql", content=b'{"query": "' + b" " * 400_000 + b'{ models { name } }"}',
                          headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["errors"][0]["message"]


# --- the app around the schema --------------------------------------------------------------


async def test_health_graphiql_and_static(client):
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["ok"] is True
    r = await client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()
    r = await client.get("/graphql", params={"query": "{ models { name } }"})
    assert r.json()["data"]["models"][0]["name"] == MODEL
    if (ROOT / "web" / "index.html").is_file():
        assert (await client.get("/")).status_code == 200


async def test_api_key_guards_writes(store, settings, graph):
    app = create_app(settings.with_(api_key="s3cret", cors_origins=("http://ui.example",)), store)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    v = VARIABLES["add_explanation"]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert "x-api-key" in await error_of(c, op("add_explanation"), v)
        assert "x-api-key" in await error_of(c, op("add_explanation"), v, headers={"x-api-key": "wrong"})
        await gql(c, op("add_explanation"), v, headers={"x-api-key": "s3cret"})
        await gql(c, op("models"))  # reads stay open
        r = await c.options("/graphql", headers={"origin": "http://ui.example", "access-control-request-method": "POST"})
        assert r.headers.get("access-control-allow-origin") == "http://ui.example"
    # without a key, a non-loopback client may not write either
    app = create_app(settings, store)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert "x-api-key" in await error_of(c, op("add_explanation"), v)


async def test_unexpected_errors_are_masked_not_leaked(client, store):
    # A neuron whose stored layer is not a number: a data fault, not the user's.
    await store.run("MATCH (l:Layer {key: 'synth/L0'}) CREATE (l)-[:HAS_NEURON]->"
                    "(:Neuron {key: 'synth/0/500', model: 'synth', layer: 'zero', index: 500})", write=True)
    body = await gql(client, "{ neuron(model: \"synth\", layer: 0, index: 500) { key layer } }", ok=False)
    assert body["errors"][0]["message"] == "internal error: the server log has details"
    assert "Traceback" not in str(body) and "zero" not in str(body)


BAD_LAYERS = [  # (variables, what graphql-core says about $l)
    ({"l": "three"}, "Int cannot represent non-integer value: 'three'"),
    ({"l": 3.5}, "Int cannot represent non-integer value: 3.5"),
    ({"l": 2**40}, "Int cannot represent non 32-bit signed integer value: 1099511627776"),
    ({}, "Expected a value of non-null type 'Int!' to be provided"),
    ({"l": None}, "Expected value of non-null type 'Int!' not to be None"),
]


@pytest.mark.parametrize("variables, says", BAD_LAYERS, ids=["string", "float", "2**40", "missing", "null"])
async def test_badly_typed_variables_get_graphql_cores_message(client, variables, says, caplog):
    q = "query($m: String!, $l: Int!, $i: Int!) { neuron(model: $m, layer: $l, index: $i) { key } }"
    caplog.set_level("ERROR")
    for accept in ("application/json", "application/graphql-response+json"):
        r = await client.post("/graphql", json={"query": q, "variables": {"m": MODEL, "i": 1, **variables}},
                              headers={"accept": accept})
        # GraphQL over HTTP: a request that did not run is a 200 with application/json, and a 400
        # without data with application/graphql-response+json
        assert r.headers["content-type"].startswith(accept)
        body = r.json()
        if accept == "application/json":
            assert r.status_code == 200 and body["data"] is None
        else:
            assert r.status_code == 400 and "data" not in body
        assert len(body["errors"]) == 1
        message = body["errors"][0]["message"]
        assert message.startswith("Variable '$l'") and says in message and "internal error" not in message
    assert not caplog.records  # the client's mistake, not a server fault


async def test_internal_errors_are_logged_with_their_traceback(client, store, caplog):
    await store.run("MATCH (l:Layer {key: 'synth/L0'}) CREATE (l)-[:HAS_NEURON]->"
                    "(:Neuron {key: 'synth/0/501', model: 'synth', layer: 'zero', index: 501})", write=True)
    caplog.set_level("ERROR")
    body = await gql(client, "{ neuron(model: \"synth\", layer: 0, index: 501) { key layer } }", ok=False)
    assert body["errors"][0]["message"] == "internal error: the server log has details"
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "zero" in caplog.text and "Traceback" in caplog.text


async def test_response_cache_serves_repeats_and_forgets_on_writes(store, settings, graph):
    app = create_app(settings, store)
    cache = app.state.response_cache
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    q = "query($k: String!) { cypher(query: \"MATCH (n:Neuron {key: $k})-[:EXPLAINED_BY]->(x) RETURN count(x) AS c\", params: {k: $k}) { rows } }"
    k = neuron_key(MODEL, 3, 1)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        first = (await gql(c, q, {"k": k}))["data"]
        trips = store.round_trips
        assert (await gql(c, q, {"k": k}))["data"] == first and store.round_trips == trips and cache.hits == 1
        await gql(c, op("add_explanation"), VARIABLES["add_explanation"])  # a write clears the cache
        again = (await gql(c, q, {"k": k}))["data"]
        assert again["cypher"]["rows"][0][0] == first["cypher"]["rows"][0][0] + 1
        await error_of(c, op("neuron"), {"model": "nope", "layer": 0, "index": 0})
        hits = cache.hits
        await error_of(c, op("neuron"), {"model": "nope", "layer": 0, "index": 0})
        assert cache.hits == hits  # errors are never cached


async def test_cypher_is_time_limited(store, settings, graph):
    app = create_app(settings.with_(cypher_timeout_ms=50), store)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    # a long loop over small lists: time-bound, not memory-bound (a 50M-element range reached
    # FalkorDB's 1 GiB query memory cap before 50 ms on a fast box)
    slow = "UNWIND range(1, 20000) AS x UNWIND range(1, 20000) AS y WITH x, y WHERE (x + y) % 7 = 3 RETURN count(*) AS c"
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        msg = await error_of(c, op("cypher"), {"query": slow})
    assert "time" in msg.lower(), msg
