"""Export round trips: JSONL back into a fresh graph is identical; neo4j-admin CSV and GraphML
parse back to the same nodes and edges; one model can be exported alone."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import networkx as nx
import pytest

from loaders.synthetic import write_synthetic_graph
from neurograph.domain import ModelInfo, example_key, layer_key, neuron_key, token_key
from neurograph.export import ExportError, export_graph, import_jsonl, iter_jsonl, read_neo4j_csv
from neurograph.store import open_store


async def _tricky(store, model: str = "odd") -> None:
    """Values that break naive CSV: quotes, commas, ';' and newlines in token arrays, unicode,
    control characters, empty strings and lists, mixed int/float columns, booleans."""
    await store.write("upsert_models", [ModelInfo(model, 1, 2).row()])
    await store.write("upsert_layers", [{"key": layer_key(model, 0), "model": model, "layer": 0, "n_neurons": 2}])
    await store.write("upsert_neurons", [
        {"key": neuron_key(model, 0, 0), "model": model, "layer": 0, "index": 0, "layer_key": layer_key(model, 0),
         "props": {"mean": 1, "flag": True, "note": 'say "hi", then; go', "empty": "", "hist": [], "big": 2**53 + 1}},
        {"key": neuron_key(model, 0, 1), "model": model, "layer": 0, "index": 1, "layer_key": layer_key(model, 0),
         "props": {"mean": 0.1 + 0.2, "flag": False, "hist": [1.5, -2.25e-8], "tiny": 5e-324}},
    ])
    await store.write("upsert_tokens", [{"key": token_key(model, i), "model": model, "id": i, "text": t}
                                        for i, t in enumerate(["\n", " ;", "\x07bell", "naïve ✓", '"'])])
    await store.write("upsert_examples", [{"key": example_key(model, 0), "model": model, "data_index": 0,
                                           "tokens": ["a;b", "\r\n", '""', ",", "日本"], "source": "t"}])
    await store.write("upsert_activations", [{"neuron": neuron_key(model, 0, 0), "example": example_key(model, 0),
                                              "kind": "max", "rank": 0, "activations": [0.5, -1.0, 0.0, 2.0, 1e-3],
                                              "max_activation": 2.0, "min_activation": -1.0, "pivot": 3}])


async def _snapshot(store) -> tuple[list, list]:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, properties(n) AS p ORDER BY p.key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, b.key AS b, properties(e) AS p")
    canon = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    return sorted(map(canon, nodes)), sorted(map(canon, edges))


def _records(recs) -> tuple[dict, dict]:
    """Nodes by (label, key) and edges by (src, type, dst, identity) -> properties. Compared with
    ==, so a long that shares a column with doubles (1 vs 1.0 in a typed CSV column) is equal."""
    nodes, edges = {}, {}
    for r in recs:
        if "node" in r:
            nodes[(r["node"], r["props"]["key"])] = r["props"]
        else:
            ident = tuple(r["props"].get(k) for k in ("kind", "rank", "role"))
            edges[(r["src"], r["edge"], r["dst"], ident)] = r["props"]
    return nodes, edges


@pytest.fixture
async def fresh(settings):
    """A second, empty graph on the same server."""
    other = await open_store(settings.with_(graph=f"t_{uuid.uuid4().hex[:12]}"))
    yield other
    await other.clear()
    await other.close()


async def test_jsonl_round_trip_is_exact(store, fresh, tmp_path):
    await write_synthetic_graph(store, "syn", n_layers=3, d_mlp=8, n_heads=2, d_vocab=50, k=3, n_examples=2)
    await _tricky(store)
    before = await _snapshot(store)
    # a page size that does not divide any label's count, so keyset cursors are exercised
    summary = await export_graph(store, tmp_path, formats=("jsonl",), page_size=7)
    assert sum(summary["nodes"].values()) == len(before[0])
    assert sum(summary["edges"].values()) == len(before[1])

    loaded = await import_jsonl(fresh, tmp_path / "graph.jsonl", batch_size=50)
    assert loaded["nodes"] == summary["nodes"] and loaded["edges"] == summary["edges"]
    after = await _snapshot(fresh)
    assert after == before  # every label, key, property value and edge, exactly

    # idempotent: importing again (an interrupted import re-run) changes nothing
    await import_jsonl(fresh, tmp_path / "graph.jsonl", batch_size=13)
    assert await _snapshot(fresh) == before


async def test_neo4j_csv_and_graphml_parse_back(store, tmp_path):
    await write_synthetic_graph(store, "syn", n_layers=2, d_mlp=6, n_heads=2, d_vocab=40, k=2, n_examples=2)
    await _tricky(store)
    summary = await export_graph(store, tmp_path, page_size=5)
    jsonl = _records(iter_jsonl(tmp_path / "graph.jsonl"))
    assert jsonl == _records(read_neo4j_csv(tmp_path / "neo4j-csv"))
    assert (len(jsonl[0]), len(jsonl[1])) == (sum(summary["nodes"].values()), sum(summary["edges"].values()))

    folder = tmp_path / "neo4j-csv"
    header = (folder / "nodes_Neuron.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "key:ID(Neuron)" and header[-1] == ":LABEL"
    assert {"layer:long", "mean:double", "flag:boolean", "hist:double[]", "note"} <= set(header)
    assert (folder / "nodes_Example.csv").read_text().splitlines()[0].split(",")[1:3] == ["data_index:long", "model"]
    rel = (folder / "rels_ACTIVATES_ON__Neuron__Example.csv").read_text().splitlines()[0].split(",")
    assert rel[:3] == [":START_ID(Neuron)", ":END_ID(Example)", ":TYPE"] and "activations:double[]" in rel
    # HEAD_COMPOSES runs both ways: one file per label pair, each in its own ID spaces
    assert {p.name for p in folder.glob("rels_HEAD_COMPOSES__*.csv")} == {
        "rels_HEAD_COMPOSES__Neuron__Head.csv", "rels_HEAD_COMPOSES__Head__Neuron.csv"}
    script = (folder / "import.sh").read_text()
    assert "neo4j-admin database import full neo4j" in script.replace(" \\\n  ", " ")
    assert "--multiline-fields=true" in script  # token texts hold line breaks
    assert "--array-delimiter=U+001F" in script  # and ';' inside token arrays
    assert script.count("--nodes=") == len(summary["nodes"]) and script.count("--relationships=") == len(
        list(folder.glob("rels_*.csv")))

    g = nx.read_graphml(tmp_path / "graph.graphml")
    assert g.number_of_nodes() == len(jsonl[0]) and g.number_of_edges() == len(jsonl[1])
    n = g.nodes[neuron_key("odd", 0, 0)]
    assert n["_label"] == "Neuron" and n["note"] == 'say "hi", then; go' and n["flag"] is True
    assert json.loads(n["hist"]) == [] and n["big"] == 2**53 + 1
    assert g.nodes[token_key("odd", 0)]["text"] == "\n"
    x = g.nodes[example_key("odd", 0)]
    assert json.loads(x["tokens"]) == ["a;b", "\r\n", '""', ",", "日本"]
    labels = Counter(d["_label"] for _, d in g.nodes(data=True))
    assert dict(labels) == summary["nodes"]
    # doubles exactly as the store gave them (FalkorDB itself answers 0.1 + 0.2 as 0.3)
    for (label, key), props in jsonl[0].items():
        for name, value in props.items():
            if isinstance(value, float) and name in g.nodes[key]:
                assert g.nodes[key][name] == value, (key, name)


async def test_one_model_only(store, tmp_path):
    await write_synthetic_graph(store, "a", n_layers=2, d_mlp=4, n_heads=1, d_vocab=20, k=2, n_examples=1)
    await write_synthetic_graph(store, "b", n_layers=2, d_mlp=4, n_heads=1, d_vocab=20, k=2, n_examples=1)
    both = await export_graph(store, tmp_path / "all", formats=("jsonl",))
    only = await export_graph(store, tmp_path / "a", formats=("jsonl", "neo4j-csv"), model="a")
    assert sum(only["nodes"].values()) * 2 == sum(both["nodes"].values())
    assert sum(only["edges"].values()) * 2 == sum(both["edges"].values())
    keys = [r["props"]["key"] if "node" in r else r["src"] for r in iter_jsonl(tmp_path / "a" / "graph.jsonl")]
    assert keys and all(k == "a" or k.startswith("a/") for k in keys)
    assert not (tmp_path / "a" / ".graph.jsonl.tmp").exists()


async def test_bad_input_is_a_clear_error(store, tmp_path):
    with pytest.raises(ExportError, match="unknown export format"):
        await export_graph(store, tmp_path, formats=("csv",))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"node": "Neuron", "props": {"key": "m/0/0"}}\n{"oops": 1}\n')
    with pytest.raises(ExportError, match=r"bad.jsonl:2"):
        await import_jsonl(store, bad)
    evil = tmp_path / "evil.jsonl"
    evil.write_text('{"node": "Neuron) DETACH DELETE (x", "props": {"key": "k"}}\n')
    with pytest.raises(ExportError, match="label or relationship type"):
        await import_jsonl(store, evil)
    assert await store.run("MATCH (n) RETURN count(n) AS n") == [{"n": 0}]
