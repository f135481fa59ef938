"""Requests have a time limit that their database queries inherit, and a request whose client
went away is given up. FalkorDB cannot stop a query from outside, so each query carries what
is left of its request's time as its server-side limit: given up, it ends by then."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from neurograph.api.app import create_app

SLOW = "MATCH (a:Scratch), (b:Scratch), (c:Scratch) RETURN count(*) AS n"
CYPHER = "query($q: String!) { cypher(query: $q) { rows } }"


async def _scratch(store) -> None:
    await store.run("UNWIND range(1, 3000) AS i CREATE (:Scratch {i: i})", write=True)
    await store.read_only("RETURN 1 AS one")  # the replica is up and synced


def _running(store) -> list:
    return store.replica.client().execute_command("GRAPH.INFO", "RunningQueries")[1]


async def _until_idle(store, limit: float) -> float:
    t0 = time.monotonic()
    while _running(store):
        assert time.monotonic() - t0 < limit, _running(store)
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def test_a_request_out_of_time_stops_its_query(store, settings):
    await _scratch(store)
    app = create_app(settings.with_(request_timeout_ms=1000, cypher_timeout_ms=20_000), store, web_dir=None,
                     cache_entries=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://t", timeout=30) as client:
        t0 = time.monotonic()
        r = await client.post("/graphql", json={"query": CYPHER, "variables": {"q": SLOW}})
        took = time.monotonic() - t0
    assert "time limit" in r.json()["errors"][0]["message"]
    assert took < 5
    await _until_idle(store, 2.0)  # the query ended with the request, not 20 s later


async def test_a_client_that_leaves_is_not_worked_for(store, settings):
    await _scratch(store)
    app = create_app(settings.with_(request_timeout_ms=3000, cypher_timeout_ms=20_000), store, web_dir=None,
                     cache_entries=0)
    body = orjson.dumps({"query": CYPHER, "variables": {"q": SLOW}})
    sent: list[dict] = []
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0.3)  # the client gives up
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"host", b"t")],
             "client": ("127.0.0.1", 1), "server": ("t", 80), "app": app}
    async with app.router.lifespan_context(app):
        t0 = time.monotonic()
        await app(scope, receive, send)
        assert time.monotonic() - t0 < 1.5  # cancelled when the client left, not after the query
    assert not sent  # nobody to answer
    # FalkorDB cannot be told to stop; the query ends at what was left of the request's limit
    await _until_idle(store, 4.0)
