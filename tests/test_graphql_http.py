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
