"""Neuron2Graph's own outputs: neuron_store.json, saved graphs (DOT), activation matrices."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from loaders.n2g_import import n2g_page_from_dot
from loaders.importing import Checker
from loaders.registry import import_source
from neurograph.errors import InputFileError

N2G = Path(__file__).parent / "fixtures" / "n2g"
OUT = N2G / "output" / "toy-n2g"
MATRIX = N2G / "data" / "activation_matrix-toy-n2g.json"


async def snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN n.key AS k, properties(n) AS p ORDER BY k")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, b")
    return sorted(map(str, nodes)), sorted(map(str, edges))


async def test_checkout_layout(store):
    s = await import_source(store, "n2g", N2G, progress=False)
    assert (s["model"], s["n_layers"], s["d_mlp"], s["warnings"]) == ("toy-n2g", 2, 4, [])
    m = (await store.run("MATCH (m:Model {key: 'toy-n2g'}) RETURN m"))[0]["m"]
    assert (m["sizes_from"], m["sizes_inferred"], m["source"]) == ("the activation matrix's shape", False, "n2g")

    # activation matrix: every neuron's max activation, with its file as provenance
    matrix = json.loads(MATRIX.read_text())
    got = {(r["l"], r["i"]): r["m"] for r in await store.run(
        "MATCH (n:Neuron {model: 'toy-n2g'}) RETURN n.layer AS l, n.index AS i, n.max AS m")}
    assert got == {(l, n): v for l, row in enumerate(matrix) for n, v in enumerate(row)}
    n = (await store.run("MATCH (n:Neuron {key: 'toy-n2g/1/3'}) RETURN n"))[0]["n"]
    prov = dict(zip(n["sources"], map(json.loads, n["source_values"])))
    assert prov["n2g:activation_matrix-toy-n2g.json"] == {"max_activation": matrix[1][3]}

    # neuron store: the token sets per neuron, and SIMILAR by their overlap
    store_doc = json.loads((OUT / "neuron_store.json").read_text())
    for role in ("activating", "important"):
        want: dict[str, set] = {}
        for token, ids in store_doc[role].items():
            for nid in ids:
                want.setdefault("toy-n2g/" + nid.replace("_", "/"), set()).add(token)
        rows = await store.run(f"MATCH (n:Neuron) WHERE n.n2g_{role}_tokens IS NOT NULL "
                               f"RETURN n.key AS k, n.n2g_{role}_tokens AS t, n.n2g_num_{role} AS c")
        assert {r["k"]: set(r["t"]) for r in rows} == want
        assert all(r["c"] == len(r["t"]) for r in rows)
    # 1/1 {mat | the} and 1/3 {cat, mat | the, on}: Jaccard 2/4
    sim = await store.run("MATCH (a)-[e:SIMILAR {kind: 'n2g'}]->(b) RETURN a.key AS a, b.key AS b, e.weight AS w")
    assert sim == [{"a": "toy-n2g/1/1", "b": "toy-n2g/1/3", "w": 0.5}]

    # saved graphs: pattern nodes per depth cluster, roles by depth, ends, edges to the context
    text = (OUT / "graphs" / "1_3").read_text()
    assert n["n2g_dot"] == text
    nodes = await store.run("MATCH (:Neuron {key: 'toy-n2g/1/3'})-[:HAS_PATTERN]->(p) "
                            "RETURN p.token AS t, p.role AS r, p.depth AS d, p.is_end AS e, p.importance AS i "
                            "ORDER BY p.key")
    assert [(x["t"], x["r"], x["d"], x["e"]) for x in nodes] == [
        ("cat", "activating", 1, False), ("mat", "activating", 1, True), ("the", "important", 2, True),
        ("on", "important", 3, True)]
    # importance as DeepDecipher reads N2G's fill colour: 1 - green/255
    green = int(re.search(r'label=on fillcolor="#(..)(..)', text).group(2), 16)
    assert nodes[3]["i"] == pytest.approx(1 - green / 255)
    nxt = await store.run("MATCH (a:PatternNode)-[:PATTERN_NEXT]->(b:PatternNode) WHERE a.neuron = 'toy-n2g/1/3' "
                          "RETURN a.token AS a, b.token AS b ORDER BY a, b")
    assert [(r["a"], r["b"]) for r in nxt] == [("cat", "the"), ("mat", "the"), ("the", "on")]
    odd = await store.run("MATCH (:Neuron {key: 'toy-n2g/0/1'})-[:HAS_PATTERN]->(p) RETURN p.token AS t ORDER BY p.key")
    assert [r["t"] for r in odd] == ['"', "\n", "  ", "said"]

    # idempotent
    first = await snapshot(store)
    await import_source(store, "n2g", N2G, progress=False)
    assert await snapshot(store) == first


async def test_vocab_gives_matches(store):
    vocab = ["the", " the", "The", " cat", "cat", "\n", " on", "dog", "  "]
    await import_source(store, "n2g", OUT, model="toy-n2g", vocab=vocab, progress=False)
    rows = await store.run("MATCH (p:PatternNode)-[m:MATCHES]->(t:Token) RETURN p.token AS p, m.role AS r, "
                           "t.id AS id, t.text AS text ORDER BY p, id")
    got = {(r["p"], r["id"]) for r in rows}
    # N2G's normalisation: title case lowered, blanks stripped from words; one-character tokens kept
    assert got == {("the", 0), ("the", 1), ("the", 2), ("cat", 3), ("cat", 4), ("\n", 5), ("on", 6), ("  ", 8)}
    assert {r["r"] for r in rows if r["p"] == "cat"} == {"activating"}


async def test_model_names_and_layouts(store, tmp_path):
    # a lone neuron_store.json: refused without --model
    lone = tmp_path / "somewhere" / "neuron_store.json"
    lone.parent.mkdir()
    shutil.copy(OUT / "neuron_store.json", lone)
    with pytest.raises(InputFileError, match="which model is this.*give --model"):
        await import_source(store, "n2g", lone, progress=False)
    assert await store.run("MATCH (n) RETURN n LIMIT 1") == []
    s = await import_source(store, "n2g", lone, model="lone", progress=False)
    assert (s["model"], s["n_layers"], s["d_mlp_at_least"]) == ("lone", None, 4)
    assert "sizes unknown" in s["warnings"][0]
    # a matrix names its model; a known model's matrix must have that model's shape
    s = await import_source(store, "n2g", MATRIX, progress=False)
    assert (s["model"], s["neurons"]) == ("toy-n2g", 8)
    wrong = tmp_path / "activation_matrix-pythia-70m.json"
    shutil.copy(MATRIX, wrong)
    before = await snapshot(store)
    with pytest.raises(InputFileError, match=r"2 layers x 4 neurons but pythia-70m has 6 x 2048.*another model"):
        await import_source(store, "n2g", wrong, progress=False)
    assert await snapshot(store) == before
    # the older layout: neuron_graphs/{model}/{folder}/{layer}_{neuron}/graph (+ renders)
    old = tmp_path / "neuron_graphs" / "toy-old"
    (old / "run1" / "1_3").mkdir(parents=True)
    shutil.copy(OUT / "graphs" / "1_3", old / "run1" / "1_3" / "graph")
    (old / "run1" / "1_3" / "graph.svg").write_text("<svg/>")
    shutil.copy(OUT / "neuron_store.json", old / "neuron_store.json")
    s = await import_source(store, "n2g", old.parent, progress=False)
    assert s["model"] == "toy-old"
    assert (await store.run("MATCH (:Neuron {key: 'toy-old/1/3'})-[:HAS_PATTERN]->(p) RETURN count(p) AS n"))[0]["n"] == 4


async def test_bad_inputs_change_nothing(store, tmp_path):
    await import_source(store, "n2g", N2G, progress=False)
    before = await snapshot(store)

    def case(rel: str, edit) -> Path:
        root = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        shutil.copytree(N2G, root)
        p = root / rel
        p.write_text(edit(p.read_text()))
        return root

    cases = [
        (case("output/toy-n2g/graphs/1_3", lambda t: t[: len(t) // 2]), r"graphs/1_3, field 'graph'.*truncated"),
        (case("output/toy-n2g/graphs/1_3", lambda t: t.replace('fillcolor="#6c6cff"', 'fillcolor="blue"')),
         r"graphs/1_3, field 'graph node 3'.*#rrggbb"),
        (case("output/toy-n2g/graphs/1_3", lambda t: t.replace("3 -> 4", "3 -> 9")),
         r"edge 3 -> 9 names node 9"),
        (case("output/toy-n2g/neuron_store.json", lambda t: t.replace('"1_3"', '"1-3"', 1)),
         r"neuron_store\.json, field .activating\['cat'\]\[0\].*'layer_neuron'"),
        (case("output/toy-n2g/neuron_store.json", lambda t: t[:-20]), r"neuron_store\.json.*not valid JSON"),
        (case("data/activation_matrix-toy-n2g.json", lambda t: json.dumps([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]])),
         r"activation_matrix-toy-n2g\.json, field '\[1\]'.*2 neurons, but layer 0 has 4"),
        (case("data/activation_matrix-toy-n2g.json", lambda t: json.dumps([[1.0, "x", 3.0, 4.0]])),
         r"field '\[0\]\[1\]'.*expected a number"),
    ]
    for root, pattern in cases:
        with pytest.raises(InputFileError, match=pattern):
            await import_source(store, "n2g", root, progress=False)
        assert await snapshot(store) == before, pattern
    with pytest.raises(InputFileError, match="no N2G outputs"):
        await import_source(store, "n2g", N2G.parent / "openai", progress=False)
    with pytest.raises(InputFileError, match="not an N2G output"):
        await import_source(store, "n2g", OUT.parent.parent / "README.md", progress=False)
    assert await snapshot(store) == before


def test_dot_reading_matches_deepdecipher():
    page, ends = n2g_page_from_dot((OUT / "graphs" / "1_3").read_text(), Checker("1_3"))
    # the root's empty cluster first, then one per depth; 'required' points to the deeper node
    assert page["graph"]["subgraph_indices"] == [0, 0, 2, 3, 4]
    assert [(n["token"], n["required"]) for n in page["graph"]["graph"]] == [
        ("cat", [2]), ("mat", [2]), ("the", [3]), ("on", [])]
    assert ends == {1, 2, 3}
