"""The request's hot path (the execution context, the cost and validation caches): the same
answers and the same errors as Strawberry's stock execution, and caches that never mix two
questions."""

from __future__ import annotations

import gc
import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import strawberry
from graphql import parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from loaders.synthetic import write_synthetic_graph
from neurograph.api import create_app
from neurograph.api.context import Context
from neurograph.api.cost import CostCache, cost_variables, estimate_cost
from neurograph.api.execution_context import AcyclicExecutionContext
from neurograph.api.ids import encode_cursor
from neurograph.api.schema import build_schema
from neurograph.api.types import Token

ROOT = Path(__file__).resolve().parents[1]
MODEL = "synth"


@pytest.fixture
async def graph(store):
    return await write_synthetic_graph(store, MODEL, n_layers=3, d_mlp=16, n_heads=2, d_vocab=80, k=4, seed=3)


def _stock(schema: strawberry.Schema) -> strawberry.Schema:
    """The same schema and limits, run by Strawberry's own execution context."""
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    return schema


async def _answer(schema, store, settings, query: str, variables: dict | None = None) -> str:
    r = await schema.execute(query, variable_values=variables, context_value=Context(store=store, settings=settings))
    return json.dumps({"data": r.data, "errors": [e.formatted for e in r.errors or []]}, sort_keys=True)


QUERIES = [
    ((ROOT / "graphql" / "neuron.graphql").read_text(), {"model": MODEL, "layer": 1, "index": 2, "first": 5}),
    ((ROOT / "graphql" / "neuron.graphql").read_text(), {"model": MODEL, "layer": 2, "index": 7, "first": 3}),
    ((ROOT / "graphql" / "neurons_page.graphql").read_text(), {"model": MODEL, "first": 4}),
    ((ROOT / "graphql" / "neighborhood.graphql").read_text(), {"id": f"{MODEL}/1/4", "depth": 2, "perNode": 3}),
    # summary neurons (edges) asked for properties they do not carry: loaded, batched
    ("query($k: String!) { neuron(model: $k, layer: 1, index: 3) { inputs(first: 3) { edges { node { "
     "key layer index interest role community stats { mean quantiles } histogram { counts } topology { degree } "
     "} } } } }", {"k": MODEL}),
    # token texts through a fragment, and without texts at all
    ("{ neuron(model: \"synth\", layer: 0, index: 1) { tokens(first: 4) { edges { node { ...T } } } } } "
     "fragment T on Token { key tokenId text }", None),
    ("{ neuron(model: \"synth\", layer: 0, index: 1) { tokens(first: 4) { edges { weight node { key tokenId } } } } }",
     None),
    # errors: unknown neuron, a bad argument
    ("{ neuron(model: \"synth\", layer: 9, index: 1) { key } }", None),
    ("{ neuron(model: \"synth\", layer: 0, index: 1) { inputs(first: 1000) { totalCount } } }", None),
]


async def test_execution_answers_like_stock_strawberry(store, settings, graph):
    fast, stock = build_schema(), _stock(build_schema())
    assert fast.execution_context_class is AcyclicExecutionContext
    for query, variables in QUERIES:
        assert await _answer(fast, store, settings, query, variables) == \
            await _answer(stock, store, settings, query, variables), query


async def test_token_texts_come_with_the_edges(store, settings, graph):
    schema = build_schema()
    page = "{ neuron(model: \"synth\", layer: 0, index: 1) { a: tokens(kinds: [\"input\"], first: 5) { edges " \
           "{ node { key %s } } } b: tokens(kinds: [\"output\"], first: 5) { edges { node { key %s } } } } }"
    trips = store.round_trips
    with_text = json.loads(await _answer(schema, store, settings, page % ("text", "text")))
    assert not with_text["errors"]
    with_text_trips, trips = store.round_trips - trips, store.round_trips
    await _answer(schema, store, settings, page % ("tokenId", "tokenId"))
    # neuron, then every edge with its tokens' properties: no round trip for the texts
    assert with_text_trips == 2 and store.round_trips - trips == 2
    edges = with_text["data"]["neuron"]["a"]["edges"] + with_text["data"]["neuron"]["b"]["edges"]
    stored = {r["key"]: r["text"] for r in await store.run(
        "UNWIND $keys AS k MATCH (t:Token {key: k}) RETURN k AS key, t.text AS text",
        {"keys": [e["node"]["key"] for e in edges]})}
    assert edges and [e["node"]["text"] for e in edges] == [stored[e["node"]["key"]] for e in edges]


async def test_examples_of_every_kind_and_cursor_are_one_round_trip(store, settings, graph):
    schema = build_schema()
    page = "examples(kind: %s, first: %d%s) { totalCount edges { node { rank } } }"
    query = "{ neuron(model: \"synth\", layer: 1, index: 2) { a: %s b: %s c: %s } }" % (
        page % ("MAX", 2, ""), page % ("RANDOM", 1, ""), page % ("MAX", 2, ', after: "%s"' % encode_cursor(0)))
    trips = store.round_trips
    n = json.loads(await _answer(schema, store, settings, query))["data"]["neuron"]
    assert store.round_trips - trips == 2  # the neuron, then all three pages
    counts = {r["kind"]: r["c"] for r in await store.run(
        "MATCH (:Neuron {key: 'synth/1/2'})-[a:ACTIVATES_ON]->() RETURN a.kind AS kind, count(a) AS c")}
    ranks = {k: [e["node"]["rank"] for e in n[k]["edges"]] for k in "abc"}
    assert ranks == {"a": [0, 1], "b": [0], "c": [1, 2]}
    assert (n["a"]["totalCount"], n["b"]["totalCount"], n["c"]["totalCount"]) == (
        counts["max"], counts["random"], counts["max"])


# --- cost and validation caches --------------------------------------------------------------


def test_cost_cache_keys_on_the_variables_the_estimate_reads():
    schema = build_schema()
    gql = schema._schema
    text = (ROOT / "graphql" / "neuron.graphql").read_text()
    doc = parse(text)
    assert cost_variables(doc) == ("first",)
    cache = CostCache(maxsize=4)
    v1 = {"model": MODEL, "layer": 1, "index": 2, "first": 5}
    base = cache.cost(gql, text, doc, v1, None)
    assert base == estimate_cost(gql, doc, v1)
    # another neuron: the same estimate, from the cache; another page size: estimated again
    assert cache.cost(gql, text, doc, {**v1, "layer": 2}, None) == base
    assert len(cache._costs) == 1
    bigger = cache.cost(gql, text, doc, {**v1, "first": 50}, None)
    assert bigger == estimate_cost(gql, doc, {**v1, "first": 50}) > base
    # absent (the default applies) and an explicit null are different keys
    cache.cost(gql, text, doc, {"model": MODEL, "layer": 1, "index": 2}, None)
    cache.cost(gql, text, doc, {**v1, "first": None}, None)
    assert len(cache._costs) == 4
    cache.cost(gql, text, doc, {**v1, "first": 7}, None)
    assert len(cache._costs) == 4  # bounded


async def test_cost_limit_still_refuses_via_variables_after_a_cheap_hit(store, settings, graph):
    schema = build_schema(max_cost=600)
    q = "query($f: Int!) { neurons(model: \"synth\", first: $f) { edges { node { outputs(first: $f) { totalCount } } } } }"
    cheap = json.loads(await _answer(schema, store, settings, q, {"f": 2}))
    assert not cheap["errors"]
    costly = json.loads(await _answer(schema, store, settings, q, {"f": 60}))
    assert "query cost" in costly["errors"][0]["message"]


async def test_validation_cache_returns_the_same_errors_every_time(store, settings, graph):
    schema = build_schema()
    bad = "{ neuron(model: \"synth\", layer: 0, index: 1) { nosuchfield } }"
    first = await _answer(schema, store, settings, bad)
    assert "nosuchfield" in first
    assert await _answer(schema, store, settings, bad) == first
    deep = "{ neuron(model: \"synth\", layer: 0, index: 1) { " + "inputs { edges { node { " * 6 + "key" + " } } }" * 6 + " } }"
    assert "exceeds maximum operation depth" in await _answer(schema, store, settings, deep)
    assert "exceeds maximum operation depth" in await _answer(schema, store, settings, deep)


# --- a finished request is freed by reference counting -------------------------------------


async def test_a_finished_request_leaves_no_cyclic_garbage(store, settings, graph):
    """Cycles (graphql-core's executor, a DataLoader pointing back at its owner, a closure
    calling itself) would keep each request's context and rows alive until the cyclic GC ran."""
    schema = build_schema()
    query, variables = QUERIES[0]
    await _answer(schema, store, settings, query, variables)  # warm: caches, connections
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for query, variables in QUERIES[:7]:
            await _answer(schema, store, settings, query, variables)
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not left & {"Context", "Loaders", "DataLoader", "AcyclicExecutionContext", "Neuron", "Token"}, left


async def test_only_a_serving_app_freezes_its_startup_objects(store, settings, graph):
    gc.unfreeze()
    try:
        given = create_app(settings, store, web_dir=None)  # tests, embedding: the caller's process
        async with given.router.lifespan_context(given):
            assert gc.get_freeze_count() == 0
        serving = create_app(settings, web_dir=None)  # opens (and closes) its own store
        async with serving.router.lifespan_context(serving):
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()  # back to normal collection for the rest of the session


async def test_a_token_without_its_text_loads_it(store, settings, graph):
    token = Token({"key": f"{MODEL}/t3", "model": MODEL, "id": 3})
    info = SimpleNamespace(context=Context(store=store, settings=settings))
    text = token.text(info)  # type: ignore[arg-type]
    assert inspect.isawaitable(text)
    stored = (await store.run("MATCH (t:Token {key: $k}) RETURN t.text AS text", {"k": f"{MODEL}/t3"}))[0]["text"]
    assert await text == stored and token.text(info) == stored  # type: ignore[arg-type]


async def test_json_in_and_out_of_the_http_view(store, settings, graph):
    """The view reads and writes JSON with orjson: non-ASCII text and the NUL stand-in come back
    as sent, a body that is not JSON is a 400 (cached path or not), and what orjson cannot
    encode falls back to the json module."""
    import httpx

    from neurograph.api.app import NeuroGraphQL

    app = create_app(settings, store, web_dir=None)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        q = "query($p: JSON) { cypher(query: \"RETURN $s AS s, 1.5e-7 AS f\", params: $p) { rows } }"
        text = "é ☃ \u2400 \"q\" \\ \n"
        r = await c.post("/graphql", json={"query": q, "variables": {"p": {"s": text}}})
        assert r.status_code == 200 and r.json()["data"]["cypher"]["rows"] == [[text, 1.5e-7]]
        assert r.headers["content-type"].startswith("application/json")
        for body in (b"{not json", b"\xff\xfe", b'{"query": "{ models { name } }"'):
            bad = await c.post("/graphql", content=body, headers={"content-type": "application/json"})
            assert bad.status_code == 400, body
    view = NeuroGraphQL(build_schema())
    value = {"big": 2**70, "x": [1.5, None, "é"]}
    assert json.loads(view.encode_json(value)) == value
