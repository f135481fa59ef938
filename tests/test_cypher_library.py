"""Every named query in cypher/*.cypher and every recipe runs for real on FalkorDB.

Parameters come from each file's ``// params:`` header, so queries other people add are
covered without touching this file: a parameter bound to a node key (``{key: $key}``,
``UNWIND $keys AS k ... {key: k}``, ``{key: r.neuron}``) gets keys of that label from a small
synthetic graph; other names come from EXAMPLES, then from the header's type hints.
Reads run first on the intact graph; writes (with two generated rows each) run afterwards.
Neo4j-only files (``*.neo4j.cypher``) are checked by tests/test_cypher_lint.py instead.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable

import pytest

from loaders.synthetic import write_synthetic_graph
from neurograph.config import Settings
from neurograph.domain import EDGE_KINDS, NODE_LABELS
from neurograph.lint import header_params, row_fields
from neurograph.queries import CYPHER_DIR, QueryLibrary, parse_file
from neurograph.store import open_store

MODEL = "lib"
NAMED = QueryLibrary(CYPHER_DIR)
NAMES = [n for n in NAMED.names() if not n.endswith(".neo4j")]
RECIPES = sorted((CYPHER_DIR / "recipes").glob("*.cypher"))
READS = [n for n in NAMES if not NAMED[n].writes]
WRITES = [n for n in NAMES if NAMED[n].writes]

World = dict[str, Any]

# Values for parameter names that mean the same thing across queries (read queries).
EXAMPLES: dict[str, Callable[[World], Any]] = {
    "model": lambda w: MODEL, "names": lambda w: [MODEL],
    "key": lambda w: w["Neuron"][0], "keys": lambda w: w["Neuron"][:3],
    "src": lambda w: w["two_hop"][0], "dst": lambda w: w["two_hop"][1],
    "layer": lambda w: 0, "layer_min": lambda w: 0, "layer_max": lambda w: 99,
    "lo": lambda w: 0, "hi": lambda w: 1000,
    "after_layer": lambda w: -1, "after_index": lambda w: -1, "after_rank": lambda w: -1,
    "after_value": lambda w: None, "min": lambda w: None, "max": lambda w: None,
    "community": lambda w: None, "role": lambda w: w["role"],
    "limit": lambda w: 10, "top_k": lambda w: 10, "cap": lambda w: 10, "per_node": lambda w: 10,
    "skip": lambda w: 0, "offset": lambda w: 0,
    "stat": lambda w: "mean", "prop": lambda w: "mean", "descending": lambda w: True,
    "kind": lambda w: "max", "min_weight": lambda w: 0.0,
    "types": lambda w: ["COMPOSES", "CORRELATES", "SIMILAR", "HEAD_COMPOSES", "TOKEN_EFFECT"],
    "q": lambda w: "fires", "query": lambda w: "fires",
    "token": lambda w: w["pattern_token"], "roles": lambda w: ["activating", "important"],
    "activating": lambda w: [w["pattern_token"]], "important": lambda w: [], "any": lambda w: [],
    "order": lambda w: "layer", "props": lambda w: {"note": "from the library test"},
}

# Row fields of write queries that are not node keys.
FIELDS: dict[str, Callable[[World, int], Any]] = {
    "model": lambda w, i: MODEL, "name": lambda w, i: MODEL, "layer": lambda w, i: 0, "index": lambda w, i: i,
    "head": lambda w, i: i, "id": lambda w, i: i, "layer_key": lambda w, i: w["Layer"][0],
    "token_key": lambda w, i: w["Token"][i], "weight": lambda w, i: 0.5 - i, "rank": lambda w, i: i,
    "count": lambda w, i: 3, "props": lambda w, i: {"mean": 0.25 + i}, "scores": lambda w, i: {"ev_correlation": 0.5},
    "tokens": lambda w, i: [" a", " b"], "token_ids": lambda w, i: [1, 2], "activations": lambda w, i: [0.1, 0.9],
    "max_activation": lambda w, i: 0.9, "min_activation": lambda w, i: 0.1, "pivot": lambda w, i: 1,
    "text": lambda w, i: f"text {i}", "token": lambda w, i: " the", "source": lambda w, i: "test", "score": lambda w, i: 0.5,
    "depth": lambda w, i: i, "role": lambda w, i: "activating", "activation": lambda w, i: 0.5,
    "importance": lambda w, i: 0.5, "is_end": lambda w, i: i == 0, "quantile": lambda w, i: 0.5,
    "data_index": lambda w, i: 100 + i, "n_neurons": lambda w, i: 4, "n_layers": lambda w, i: 3,
    "d_mlp": lambda w, i: 4, "d_model": lambda w, i: 8, "n_heads": lambda w, i: 2, "d_vocab": lambda w, i: 30,
    "act_fn": lambda w, i: "gelu", "dataset": lambda w, i: "test", "n_tokens": lambda w, i: 100,
    "ident": lambda w, i: [], "n_layers_at_least": lambda w, i: None, "d_mlp_at_least": lambda w, i: 4,
    "n_heads_at_least": lambda w, i: None, "sizes_from": lambda w, i: "test",
    "sources": lambda w, i: ["test:a.csv", f"test:{i}.csv"], "values": lambda w, i: ['{"x": 1}', f'{{"x": {i}}}'],
    "labels": lambda w, i: ["feature:test"],
}


def _key_label(text: str, ref: str) -> str | None:
    """The label whose key ``ref`` (e.g. ``$key``, ``r.neuron``, ``k``) is matched against."""
    m = re.search(rf"\(\s*`?\w*`?\s*:\s*`?(\w+)`?\s*\{{[^}}]*\bkey\s*:\s*{re.escape(ref)}\b", text)
    return m.group(1) if m and m.group(1) in NODE_LABELS else None


def _edge_kind(text: str, field: str) -> str | None:
    m = re.search(rf"\[\s*\w*\s*:\s*(\w+)\s*\{{[^}}]*\bkind\s*:\s*r\.{field}\b", text)
    kinds = EDGE_KINDS.get(m.group(1)) if m else None
    return kinds[0] if kinds else None


def read_params(text: str, world: World) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in header_params(text).items():
        label = _key_label(text, f"${name}")
        unwound = re.search(rf"UNWIND\s+\${name}\s+AS\s+(\w+)", text)
        if name in ("src", "dst"):  # a pair of endpoints: two neurons joined by a path
            params[name] = EXAMPLES[name](world)
        elif name == "token" and "exact" in spec:  # the token text as stored, not normalised
            params[name] = world["pivot_token"]
        elif label:
            params[name] = world[label][0]
        elif unwound and _key_label(text, unwound.group(1)):
            params[name] = world[_key_label(text, unwound.group(1))][:3]
        elif name in EXAMPLES:
            params[name] = EXAMPLES[name](world)
        elif quoted := re.search(r"'([^']*)'", spec):
            params[name] = quoted.group(1)
        elif "or null" in spec:
            params[name] = None
        elif spec.startswith("["):
            params[name] = []
        elif re.search(r"\bint", spec):
            params[name] = 1
        elif re.search(r"\bfloat", spec):
            params[name] = 0.0
        elif re.search(r"\bbool", spec):
            params[name] = True
        else:
            params[name] = "x"
    return params


def write_rows(text: str, world: World, n: int = 2) -> list[dict]:
    fields = row_fields(header_params(text).get("rows", ""))
    rows = []
    for i in range(n):
        row = {}
        for f in fields:
            label = _key_label(text, f"r.{f}")
            if label:  # dst one step on from src, so edges are no self-loops
                row[f] = world[label][(i + (f == "dst")) % len(world[label])]
            elif kind := _edge_kind(text, f):
                row[f] = kind
            elif f in FIELDS:
                row[f] = FIELDS[f](world, i)
            else:
                row[f] = None  # an optional field this table does not know yet
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
async def library_store(falkordb_dir):
    """One synthetic graph for the whole module (queries only read it until the write tests)."""
    store = await open_store(Settings(data_dir=falkordb_dir, graph=f"lib_{uuid.uuid4().hex[:10]}"))
    await write_synthetic_graph(store, MODEL, n_layers=3, d_mlp=6, n_heads=2, d_vocab=40, k=3, seed=1,
                                n_examples=2, pattern_every=1)
    world: World = {}
    for label in NODE_LABELS:
        world[label] = [r["k"] for r in await store.run(f"MATCH (n:{label}) RETURN n.key AS k ORDER BY k LIMIT 5")]
        assert world[label], f"the synthetic graph has no {label} node"
    # Neurons in the middle layer have edges both ways: every neighbour query finds some.
    world["Neuron"] = [r["k"] for r in await store.run(
        "MATCH (n:Neuron {layer: 1}) RETURN n.key AS k ORDER BY n.index LIMIT 5")]
    pair = await store.run("MATCH (a:Neuron)-[:COMPOSES]->(:Neuron)-[:COMPOSES]->(b:Neuron) "
                           "RETURN a.key AS a, b.key AS b ORDER BY a, b LIMIT 1")
    world["two_hop"] = (pair[0]["a"], pair[0]["b"])
    world["role"] = (await store.run("MATCH (n:Neuron) WHERE n.role IS NOT NULL RETURN n.role AS r LIMIT 1"))[0]["r"]
    tok = await store.run("MATCH (p:PatternNode {role: 'activating'}) RETURN p.token AS t ORDER BY p.key LIMIT 1")
    world["pattern_token"] = tok[0]["t"].strip().lower()
    pivot = await store.run("MATCH (:Neuron)-[e:ACTIVATES_ON {kind: 'max'}]->(x:Example) "
                            "RETURN x.tokens[e.pivot] AS t ORDER BY x.key LIMIT 1")
    world["pivot_token"] = pivot[0]["t"]
    store.world = world  # type: ignore[attr-defined]
    store.nonempty = {}  # type: ignore[attr-defined]
    yield store
    await store.clear()
    await store.close()


def test_library_is_found():
    assert "ping" in READS and "upsert_neurons" in WRITES and RECIPES


@pytest.mark.parametrize("name", READS)
async def test_named_read_runs(library_store, name):
    q = NAMED[name]
    params = read_params(q.path.read_text(), library_store.world)
    rows = await library_store.query(name, **params)
    assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    library_store.nonempty[name] = bool(rows)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
async def test_recipe_runs(library_store, path):
    q = parse_file(path)
    params = read_params(path.read_text(), library_store.world)
    rows, _ = await library_store.read_only(q.text, params)  # recipes are for the read-only endpoint
    assert isinstance(rows, list)
    library_store.nonempty[f"recipes/{path.stem}"] = bool(rows)


def test_reads_mostly_return_rows(library_store):
    # The graph has every label and edge kind, so the generated parameters should hit data;
    # a header whose parameters cannot be filled meaningfully shows up here.
    seen = library_store.nonempty
    empty = sorted(n for n, hit in seen.items() if not hit)
    assert len(seen) == len(READS) + len(RECIPES)
    assert len(empty) <= len(seen) // 4, f"reads that returned no rows: {empty}"


@pytest.mark.parametrize("name", WRITES)
async def test_named_write_runs(library_store, name):
    q = NAMED[name]
    text = q.path.read_text()
    if "rows" in header_params(text):
        rows = write_rows(text, library_store.world)
        assert await library_store.write(name, rows) == len(rows)
    else:
        await library_store.run(q.text, read_params(text, library_store.world), write=True)
    # the graph is still there and consistent enough to answer
    assert await library_store.ping()
