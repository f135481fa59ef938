"""Fuzzing: GraphQL operations generated from the schema never produce a server error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from hypothesis_graphql import mutations, nodes, queries

from loaders.synthetic import write_synthetic_graph
from neurograph.api.app import create_app

SDL = (Path(__file__).resolve().parents[1] / "graphql" / "schema.graphql").read_text()
# JSON arguments (cypher params): objects and odd values alike.
JSON = st.sampled_from(['{}', '{"k": 1}', '[]', 'null', '"x"', '{"a": {"b": [1, 2]}}']).map(nodes.String)
STRATEGIES = {"Query": queries, "Mutation": mutations}


@pytest.fixture
async def fuzz_client(store, settings):
    await write_synthetic_graph(store, "synth", n_layers=2, d_mlp=8, n_heads=2, d_vocab=40, k=3)
    app = create_app(settings, store=store, web_dir=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz") as client:
        yield client


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
async def test_generated_operations_never_fail_the_server(fuzz_client, kind):
    """hypothesis-graphql writes valid operations over the whole schema (random arguments,
    ids, limits, nesting); each must come back as data or as a clear GraphQL error, never as
    a 5xx or a masked internal error."""
    loop = asyncio.get_running_loop()
    sent: list[str] = []
    outcomes = {"data": 0, "errors": 0}

    @hsettings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(operation=STRATEGIES[kind](SDL, custom_scalars={"JSON": JSON}))
    def run(operation: str) -> None:
        sent.append(operation)
        fut = asyncio.run_coroutine_threadsafe(fuzz_client.post("/graphql", json={"query": operation}), loop)
        response = fut.result(timeout=60)
        assert response.status_code < 500, (operation, response.text[:500])
        body = response.json()
        for err in body.get("errors") or []:
            assert "internal error" not in err["message"], (operation, err)
            assert err["message"].strip(), (operation, err)
        outcomes["errors" if body.get("errors") else "data"] += 1

    await loop.run_in_executor(None, run)
    assert len(sent) >= 50
    assert outcomes["errors"] > 0, outcomes  # random ids and names must meet clear errors
    if kind == "Query":
        assert outcomes["data"] > 0, outcomes  # and some operations must succeed
