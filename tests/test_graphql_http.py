"""GraphQL over HTTP, as other clients see it: graphql-http's audit of the spec (every MUST
and no warning), request-level errors as JSON GraphQL errors, application/graphql-response+json,
caching headers on GET, read-only CORS, and a store outage answered without the store's address.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from loaders.synthetic import write_synthetic_graph
from neurograph.api import create_app
from web_server import serve

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "tools" / "graphql-http-audit"
MODEL = "synth"
GQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def site(store, settings):
    await write_synthetic_graph(store, MODEL, n_layers=2, d_mlp=8, n_heads=2, d_vocab=40, k=3)
    async with serve(create_app(settings=settings, store=store)) as url:
        yield url


async def test_graphql_http_audit_passes_every_must_with_no_warning(site: str) -> None:
    import asyncio

    # `make test` installs it; run by hand, say how rather than skip
    assert (AUDIT / "node_modules").is_dir() and shutil.which("node"), \
        "graphql-http is not installed: npm ci --prefix tools/graphql-http-audit"

    proc = await asyncio.create_subprocess_exec("node", str(AUDIT / "audit.mjs"), f"{site}/graphql",
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    results = [x for x in lines if "id" in x]
    bad = [x for x in results if x["status"] != "ok"]
    print(lines[-1])  # {"summary": {"ok": N, "warn": 0, "error": 0}}
    assert results and not bad, json.dumps(bad, indent=1)


async def test_request_errors_are_json_graphql_errors(site: str) -> None:
    async with httpx.AsyncClient(base_url=site) as c:
        for body in ({"query": "{ models { name } }", "variables": '{"a": 1}'}, {"variables": {}}, [], 3,
                     {"query": 7}, {"query": "{ models { name } }", "operationName": 1}):
            r = await c.post("/graphql", json=body)
            assert r.status_code == 400, (body, r.status_code)
            assert r.headers["content-type"].startswith("application/json"), r.headers
            msg = r.json()["errors"][0]["message"]
            assert msg and "data" not in r.json()
        r = await c.post("/graphql", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["errors"][0]["message"]
        assert "string" in (await c.post("/graphql", json={"query": "{ models { name } }", "variables": "{}"})).json()[
            "errors"][0]["message"]
        r = await c.get("/graphql", headers={"accept": "application/json"})
        assert r.status_code == 400 and "no `query`" in r.json()["errors"][0]["message"]
        # A browser still gets GraphiQL.
        r = await c.get("/graphql", headers={"accept": "text/html"})
        assert r.status_code == 200 and "graphiql" in r.text.lower()


async def test_graphql_response_json(site: str) -> None:
    async with httpx.AsyncClient(base_url=site) as c:
        ok = await c.post("/graphql", json={"query": "{ models { name } }"}, headers={"accept": GQL_RESPONSE})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith(GQL_RESPONSE)
        assert ok.json()["data"]["models"][0]["name"] == MODEL
        for query in ("{ models { name ", "{ nosuchfield }"):
            bad = await c.post("/graphql", json={"query": query}, headers={"accept": GQL_RESPONSE})
            assert bad.status_code == 400 and "data" not in bad.json() and bad.json()["errors"], bad.text
            # With application/json the same request is a 200, as the spec asks.
            old = await c.post("/graphql", json={"query": query}, headers={"accept": "application/json"})
            assert old.status_code == 200 and old.json()["errors"]
        # A field error is not a request error: data comes back with it.
        q = 'query { neuron(model: "synth", layer: 0, index: 999) { key } }'
        r = await c.post("/graphql", json={"query": q}, headers={"accept": GQL_RESPONSE})
        assert r.status_code == 200 and "data" in r.json() and r.json()["errors"]


async def test_get_answers_carry_etag_and_cache_control(site: str) -> None:
    async with httpx.AsyncClient(base_url=site) as c:
        params = {"query": "{ models { name neuronCount } }"}
        r = await c.get("/graphql", params=params)
        assert r.status_code == 200 and r.json()["data"]["models"]
        tag = r.headers["etag"]
        assert tag.startswith('W/"') and "max-age=" in r.headers["cache-control"]
        again = await c.get("/graphql", params=params, headers={"if-none-match": tag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
        # An answer with errors is not cacheable.
        r = await c.get("/graphql", params={"query": "{ nosuchfield }"})
        assert "etag" not in r.headers
        # Large answers are gzipped for clients that accept it (httpx does), resolved live or not.
        big = await c.post("/graphql", json={"query": "{ neurons(model: \"synth\", first: 16) { edges { node { key props } } } }"})
        assert big.headers.get("content-encoding") == "gzip" and big.json()["data"]


async def test_cors_reads_open_writes_need_the_key(site: str) -> None:
    origin = {"origin": "https://elsewhere.example"}
    async with httpx.AsyncClient(base_url=site) as c:
        r = await c.get("/graphql", params={"query": "{ models { name } }"}, headers=origin)
        assert r.headers["access-control-allow-origin"] == "*"
        r = await c.get(f"/api/{MODEL}/all/0/0", headers=origin)
        assert r.headers["access-control-allow-origin"] == "*"
        pre = await c.options("/graphql", headers={**origin, "access-control-request-method": "POST",
                                                     "access-control-request-headers": "content-type"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
        assert "POST" in pre.headers["access-control-allow-methods"]
        write = {"query": 'mutation { addExplanation(model: "synth", layer: 0, index: 1, text: "x") { text } }'}
        # From a page of another origin, a loopback client is not trusted to write...
        r = await c.post("/graphql", json=write, headers=origin)
        assert r.headers["access-control-allow-origin"] == "*"
        assert "x-api-key" in r.json()["errors"][0]["message"]
        # ...from the server's own page (or a plain client) it is, as before.
        r = await c.post("/graphql", json=write, headers={"origin": site})
        assert not r.json().get("errors"), r.json()


async def test_store_outage_does_not_show_the_store_address(store, settings, monkeypatch) -> None:
    from neurograph.errors import StoreUnavailable

    async def down(*args, **kwargs):
        raise StoreUnavailable("FalkorDB is not reachable: Error 2 connecting to unix socket: /home/someone/.local/share/neurograph/falkordb.sock")

    app = create_app(settings=settings, store=store, cache_entries=0)
    monkeypatch.setattr(store, "query", down)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/graphql", json={"query": "{ models { name } }"})
    msg = r.json()["errors"][0]["message"]
    assert "not reachable" in msg and ".sock" not in msg and "/home" not in msg


async def test_a_batch_gets_one_result_per_operation_each_with_its_own_errors(site: str) -> None:
    hop = "outputs(first: 1) { edges { node { %s } } }"
    deep = "{ models { layers { interesting(first: 1) { %s } } } }" % (hop % (hop % (hop % (hop % "key"))))
    aliases = "{ %s }" % " ".join(f"a{i}: __typename" for i in range(40))
    batch = [
        {"query": "query M { models { name } }", "operationName": "M"},
        {"query": 'query($i: Int!) { neuron(model: "synth", layer: 0, index: $i) { key } }', "variables": {"i": 3}},
        {"query": 'query { neuron(model: "synth", layer: 0, index: 999) { key } }'},  # a field error
        {"query": "{ models { name "},  # does not parse
        {"variables": {}},  # no query
        {"query": deep},  # over the depth limit
        {"query": aliases},  # over the alias limit
        '{ "query": "a string, not an object" }',
    ]
    async with httpx.AsyncClient(base_url=site) as c:
        single = (await c.post("/graphql", json=batch[1])).json()
        r = await c.post("/graphql", json=batch)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        out = r.json()
        assert isinstance(out, list) and len(out) == len(batch)
        assert out[0] == {"data": {"models": [{"name": MODEL}]}}
        assert out[1] == single == {"data": {"neuron": {"key": "synth/0/3"}}}
        assert out[2]["errors"][0]["path"] == ["neuron"] and "data" in out[2]
        assert "Syntax Error" in out[3]["errors"][0]["message"]
        assert "no `query`" in out[4]["errors"][0]["message"]
        assert "exceeds maximum operation depth" in out[5]["errors"][0]["message"]
        assert "aliases" in out[6]["errors"][0]["message"]
        assert "JSON object" in out[7]["errors"][0]["message"]
        for bad in out[3:]:
            assert "data" not in bad or bad["data"] is None
        # graphql-response+json: the batch ran, so 200 with each result's errors inside it.
        r = await c.post("/graphql", json=batch[:4], headers={"accept": GQL_RESPONSE})
        assert r.status_code == 200 and r.headers["content-type"].startswith(GQL_RESPONSE)
        assert [("data" in x, bool(x.get("errors"))) for x in r.json()] == [
            (True, False), (True, False), (True, True), (False, True)]
        # Too many operations, or none: one clear request error, nothing run.
        r = await c.post("/graphql", json=[batch[0]] * 11)
        assert r.status_code == 400 and r.json() == {"errors": [{"message": (
            "a batch of 11 operations is over the limit of 10 (NEUROGRAPH_GRAPHQL_MAX_BATCH): "
            "split it into smaller batches")}]}
        r = await c.post("/graphql", json=[])
        assert r.status_code == 400 and "empty" in r.json()["errors"][0]["message"]
        # GET stays one operation.
        r = await c.get("/graphql", params={"query": "{ models { name } }"})
        assert r.json() == {"data": {"models": [{"name": MODEL}]}}


async def test_batch_limit_from_settings_and_a_mutation_in_a_batch(store, settings) -> None:
    await write_synthetic_graph(store, MODEL, n_layers=2, d_mlp=8, n_heads=2, d_vocab=40, k=3)
    app = create_app(settings.with_(graphql_max_batch=2), store, web_dir=None)
    write = {"query": 'mutation { addExplanation(model: "synth", layer: 0, index: 1, text: "batched") { text } }'}
    read = {"query": 'query { neuron(model: "synth", layer: 0, index: 1) { explanations { text } } }'}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://t") as c:
        r = await c.post("/graphql", json=[read, read, read])
        assert r.status_code == 400 and "over the limit of 2" in r.json()["errors"][0]["message"]
        r = await c.post("/graphql", json=[write])
        assert r.json() == [{"data": {"addExplanation": {"text": "batched"}}}]
        after = (await c.post("/graphql", json=[read, read])).json()
        assert [x["data"]["neuron"]["explanations"][-1]["text"] for x in after] == ["batched", "batched"]


async def test_each_operation_of_a_batch_has_the_request_time_limit(store, settings) -> None:
    import time

    await store.run("UNWIND range(1, 3000) AS i CREATE (:Scratch {i: i})", write=True)
    await store.read_only("RETURN 1 AS one")  # the replica is up and synced
    slow = {"query": "query($q: String!) { cypher(query: $q) { rows } }",
            "variables": {"q": "MATCH (a:Scratch), (b:Scratch), (c:Scratch) RETURN count(*) AS n"}}
    app = create_app(settings.with_(request_timeout_ms=1000, cypher_timeout_ms=20_000), store, web_dir=None,
                     cache_entries=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://t", timeout=30) as c:
        t0 = time.monotonic()
        r = await c.post("/graphql", json=[slow, {"query": "{ ping: __typename }"}])
        took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    out = r.json()
    assert "time limit" in out[0]["errors"][0]["message"]
    assert out[1] == {"data": {"ping": "Query"}}
    assert took < 5
