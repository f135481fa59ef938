"""Cypher fuzzing of the read-only path: queries generated from the guard's own grammar
(hypothesis draws sentences of it), and a corpus of FalkorDB's known crashing shapes. After
each, the serving store answers and the graph is unchanged. A generated query may well be
nonsense to the engine (an unbound variable): then it must get a clear QueryError, nothing worse."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.lark import from_lark

from neurograph.errors import QueryError
from neurograph.store.guard import FUNCTIONS, READ_PROCEDURES, _parser, checked_read_only

KEYWORD = re.compile(r"^([a-z]+)")


def _explicit() -> dict[str, st.SearchStrategy[str]]:
    """Strategies for the terminals hypothesis cannot draw from their regexes (look-arounds)."""
    names = st.sampled_from(["n", "m", "x", "k", "path", "`a b`"])
    out = {
        "NAME": names.map(lambda s: f" {s} "),
        "FUNC_NAME": st.sampled_from(sorted(FUNCTIONS | READ_PROCEDURES)),
        "QUANT": st.sampled_from(["all", "any", "none", "single"]),
        "NUMBER": st.sampled_from(["1.5", ".5", "2e3", "0.0"]),
        "STRING": st.sampled_from(["'a'", "'CREATE (x)'", '"b"', "'it\\'s'", "''"]),
        "COMMENT": st.just(" "),  # a comment before a function's "(" is refused; tested apart
        "WS": st.just(" "),
    }
    for t in _parser().terminals:
        if t.name not in out and t.pattern.type == "re" and ("\\b" in t.pattern.value):
            word = KEYWORD.match(t.pattern.value)
            out[t.name] = st.just(f" {word.group(1).upper()} ")
    return out


QUERIES = from_lark(_parser(), explicit=_explicit())


@pytest.fixture
async def graph(store):
    await store.run("UNWIND range(0, 19) AS i CREATE (:Neuron {key: 'f/' + toString(i), model: 'f', layer: i % 3, "
                    "index: i})", write=True)
    await store.run("MATCH (a:Neuron), (b:Neuron) WHERE a.index + 1 = b.index CREATE (a)-[:COMPOSES {weight: 0.5}]->(b)",
                    write=True)
    return store


async def _state(store) -> list:
    return await store.run("MATCH (n) OPTIONAL MATCH (n)-[e]->() RETURN count(DISTINCT n) AS n, count(e) AS e, "
                           "collect(DISTINCT n.key) AS keys")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=QUERIES)
async def test_grammar_generated_queries_never_hurt_the_store(graph, text):
    before = await _state(graph)
    try:
        checked_read_only(text)  # what the grammar makes parses; a function drawn for a procedure is refused
    except QueryError as e:
        assert "is not allowed here" in str(e) or "is not known here" in str(e), (text, e)
    try:
        await graph.read_only(text, timeout_ms=2000, max_rows=50)
    except QueryError:
        pass  # nonsense to the engine, said clearly
    assert await graph.ping()
    assert await _state(graph) == before


CRASHERS = [
    "CALL { CALL db.labels() } RETURN 1",
    "CALL { CALL db.labels() YIELD label RETURN DISTINCT label } RETURN label",
    "CALL { CALL db.propertyKeys() YIELD propertyKey RETURN collect(propertyKey) AS c } RETURN c",
    "CALL { /* comment */ MATCH (n) RETURN n } RETURN n",
    "CALL { // comment\n MATCH (n) RETURN n } RETURN count(n)",
    "CALL { MATCH (n) RETURN n UNION MATCH (n) RETURN n } RETURN n",
    "UNWIND [1, 2] AS x CALL { WITH x RETURN x * 2 AS y } RETURN y",
    "FOREACH (x IN range(1, 3) | CREATE (:X))",
    "MATCH (n) FOREACH (x IN [1] | SET n.y = x)",
    "MATCH (n) WITH DISTINCT n CALL { WITH n MATCH (n)-->(m) RETURN collect(m) AS ms } RETURN ms",
]


@pytest.mark.parametrize("text", CRASHERS)
async def test_known_crashers_are_refused_and_the_store_serves_on(graph, text):
    before = await _state(graph)
    with pytest.raises(QueryError, match="read-only Cypher"):
        await graph.read_only(text)
    assert await graph.ping()
    assert await _state(graph) == before
