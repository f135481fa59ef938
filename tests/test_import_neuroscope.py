"""Neuroscope / DeepDecipher import: the DeepDecipher folder layout, single files, a local
HTTP server, bad input, idempotency."""

from __future__ import annotations

import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loaders.registry import import_source
from neurograph.domain import example_key
from neurograph.errors import InputFileError

DD = Path(__file__).parent / "fixtures" / "deepdecipher"
TOY = DD / "toy-dd"


async def snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, b")
    return [repr(sorted(r.items())) for r in nodes], sorted(repr(sorted(r.items())) for r in edges)


def page(layer: int, neuron: int) -> dict:
    doc = json.loads((TOY / "neuroscope" / str(layer) / f"{neuron}.json").read_text())
    return doc.get("data", doc)


async def test_deepdecipher_tree(store):
    summary = await import_source(store, "deepdecipher", TOY, progress=False)
    assert summary["model"] == "toy-dd" and summary["units"] == 6
    meta = json.loads((TOY / "metadata.json").read_text())["data"]
    model = (await store.run("MATCH (m:Model {key: 'toy-dd'}) RETURN m"))[0]["m"]
    assert (model["n_layers"], model["d_mlp"], model["act_fn"], model["dataset"], model["source"]) == (
        meta["num_layers"], meta["layer_size"], meta["activation_function"], meta["dataset"], "deepdecipher")
    assert len(await store.run("MATCH (:Model {key: 'toy-dd'})-[:HAS_LAYER]->(l:Layer) RETURN l")) == meta["num_layers"]

    # Neuroscope texts: one Example per data_index, shared by every neuron; edges carry activations
    pages = {(l, n): page(l, n) for l, n in [(0, 0), (0, 1), (1, 2)]}
    data_indices = {t["data_index"] for p in pages.values() for t in p["texts"]}
    examples = await store.run("MATCH (x:Example) RETURN x.key AS key, x.tokens AS tokens, x.data_index AS di")
    assert {r["key"] for r in examples} == {example_key("toy-dd", d) for d in data_indices}
    t0 = pages[(1, 2)]["texts"][0]
    edge = await store.run(
        "MATCH (:Neuron {key: 'toy-dd/1/2'})-[e:ACTIVATES_ON {kind: 'max', rank: 0}]->(x:Example) RETURN e, x")
    assert edge[0]["x"]["tokens"] == t0["tokens"] and edge[0]["x"]["data_index"] == t0["data_index"]
    assert edge[0]["e"]["activations"] == pytest.approx(t0["activations"])
    assert edge[0]["e"]["pivot"] == t0["max_activating_token_index"]
    assert edge[0]["e"]["max_activation"] == pytest.approx(t0["max_activation"])
    n_edges = await store.run("MATCH (:Neuron)-[e:ACTIVATES_ON]->(:Example) RETURN count(e) AS n")
    assert n_edges[0]["n"] == sum(len(p["texts"]) for p in pages.values())
    n12 = (await store.run("MATCH (n:Neuron {key: 'toy-dd/1/2'}) RETURN n"))[0]["n"]
    assert n12["neuroscope_max_range"] == pytest.approx(max(t["max_range"] for t in pages[(1, 2)]["texts"]))

    # neuron_explainer: explanation with score
    ex = await store.run("MATCH (n:Neuron)-[:EXPLAINED_BY]->(e:Explanation) RETURN n.key AS n, e.text AS text, "
                         "e.score AS score, e.source AS source ORDER BY n")
    assert [(r["n"], r["text"], r["source"]) for r in ex] == [
        ("toy-dd/0/1", "the word 'the' before a noun", "openai"), ("toy-dd/1/2", "end of sentence", "openai")]
    assert ex[0]["score"] == pytest.approx(0.42)

    # neuron2graph: pattern nodes, links by depth, similar neurons (stored once, src < dst)
    n2g = json.loads((TOY / "neuron2graph" / "0" / "1.json").read_text())["data"]
    nodes = await store.run("MATCH (:Neuron {key: 'toy-dd/0/1'})-[:HAS_PATTERN]->(p:PatternNode) "
                            "RETURN p.token AS token, p.depth AS depth, p.role AS role, p.importance AS imp "
                            "ORDER BY p.key")
    assert [r["token"] for r in nodes] == [g["token"] for g in n2g["graph"]["graph"]]
    assert [r["depth"] for r in nodes] == [0, 1, 2, 2]
    assert [r["role"] for r in nodes] == ["activating", "activating", "important", "important"]
    links = await store.run("MATCH (a:PatternNode)-[:PATTERN_NEXT]->(b:PatternNode) RETURN a.token AS a, b.token AS b")
    assert sorted((r["a"], r["b"]) for r in links) == sorted(
        [(" mat", " the"), (" the", " on"), (" the", " sat")])
    sim = await store.run("MATCH (a:Neuron)-[e:SIMILAR]->(b:Neuron) RETURN a.key AS a, b.key AS b, e.weight AS w")
    assert sorted((r["a"], r["b"], r["w"]) for r in sim) == [
        ("toy-dd/0/1", "toy-dd/0/3", 0.5), ("toy-dd/0/1", "toy-dd/1/2", 0.75)]
    neurons = await store.run("MATCH (n:Neuron) RETURN n.key AS k ORDER BY k")
    assert [r["k"] for r in neurons] == ["toy-dd/0/0", "toy-dd/0/1", "toy-dd/0/3", "toy-dd/1/2"]


async def test_reimport_changes_nothing(store):
    await import_source(store, "deepdecipher", TOY, progress=False)
    first = await snapshot(store)
    await import_source(store, "deepdecipher", TOY, progress=False)
    await import_source(store, "deepdecipher", DD, model="toy-dd", progress=False)  # parent folder + --model
    assert await snapshot(store) == first


async def test_single_files(store, tmp_path):
    # an /api/{model}/all/{l}/{n} answer: services with data are imported, errors skipped
    s = await import_source(store, "deepdecipher", DD / "all-1-3.json", model="toy-dd", layer=1, neuron=3,
                            progress=False)
    assert s["examples"] == 3 and s["explanations"] == 1
    # a bare Neuroscope page: the neuron comes from the page itself
    f = tmp_path / "page.json"
    f.write_text(json.dumps(page(0, 0)))
    await import_source(store, "neuroscope", f, model="toy-dd", progress=False)
    rows = await store.run("MATCH (n:Neuron)-[e:ACTIVATES_ON]->(:Example) RETURN n.key AS n, count(e) AS c ORDER BY n")
    assert [(r["n"], r["c"]) for r in rows] == [("toy-dd/0/0", 3), ("toy-dd/1/3", 3)]
    # an explainer answer names no neuron: taken from a {layer}/{neuron}.json path
    d = tmp_path / "0" / "2.json"
    d.parent.mkdir()
    d.write_text(json.dumps({"explanation": "x", "score": 0.1}))
    await import_source(store, "deepdecipher", d, model="toy-dd", progress=False)
    assert await store.run("MATCH (:Neuron {key: 'toy-dd/0/2'})-[:EXPLAINED_BY]->(e) RETURN e.text AS t") == [{"t": "x"}]
    # model metadata alone: the model and its layers
    await import_source(store, "deepdecipher", TOY / "metadata.json", progress=False)
    assert (await store.run("MATCH (m:Model {key: 'toy-dd'}) RETURN m.d_mlp AS d"))[0]["d"] == 4


def _corrupt(tmp_path: Path, rel: str, edit) -> Path:
    root = tmp_path / "tree" / "toy-dd"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(TOY, root)
    f = root / rel
    f.write_text(edit(f.read_text()))
    return root


def _json_edit(fn):
    def edit(text: str) -> str:
        doc = json.loads(text)
        fn(doc.get("data", doc))
        return json.dumps(doc)
    return edit


async def test_bad_inputs_change_nothing(store, tmp_path):
    await import_source(store, "deepdecipher", DD / "all-1-3.json", model="toy-dd", layer=1, neuron=3,
                        progress=False)
    before = await snapshot(store)
    cases = [
        ("neuroscope/1/2.json", lambda t: t[: len(t) // 2], r"neuroscope/1/2\.json: not valid JSON \(truncated\?\)"),
        ("neuroscope/0/1.json", _json_edit(lambda d: d["texts"][1]["activations"].__setitem__(2, "high")),
         r"0/1\.json, field 'texts\[1\]\.activations\[2\]': expected a number, got a string"),
        ("neuroscope/0/1.json", _json_edit(lambda d: d["texts"][0]["tokens"].pop()),
         r"field 'texts\[0\]\.activations'.*tokens but"),
        ("neuroscope/0/1.json", _json_edit(lambda d: d["texts"][0].pop("data_index")),
         r"field 'texts\[0\]\.data_index': missing"),
        ("neuroscope/0/1.json", _json_edit(lambda d: d["neuron_index"].__setitem__("neuron", 3)),
         r"field 'neuron_index'.*neuron 0/3 but its path says 0/1"),
        ("neuroscope/0/0.json", lambda t: json.dumps({"explanation": "wrong folder", "score": 1}),
         r"neuroscope/0/0\.json, field 'texts': missing"),
        ("neuron_explainer/1/2.json", _json_edit(lambda d: d.__setitem__("score", "0.5")),
         r"neuron_explainer/1/2\.json, field 'score': expected a number"),
        ("neuron2graph/0/1.json", _json_edit(lambda d: d["graph"]["graph"][2].__setitem__("required", [9])),
         r"field 'graph\.graph\[2\]\.required': node 9 does not exist"),
        ("neuron2graph/0/1.json", _json_edit(lambda d: d["similar"][0].pop("layer")),
         r"field 'similar\[0\]\.layer': missing"),
        ("metadata.json", _json_edit(lambda d: d.__setitem__("num_layers", "two")),
         r"metadata\.json, field 'num_layers': expected an integer"),
    ]
    for rel, edit, pattern in cases:
        root = _corrupt(tmp_path, rel, edit)
        with pytest.raises(InputFileError, match=pattern):
            await import_source(store, "deepdecipher", root, progress=False)
        assert await snapshot(store) == before, rel
    f = tmp_path / "other.json"
    f.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputFileError, match=r"other\.json.*not a Neuroscope/DeepDecipher document"):
        await import_source(store, "neuroscope", f, model="toy-dd", progress=False)
    for answer in ({"missing_data_types": ["neuroscope"]},  # older servers' name, and ours before
                   {"missing_data_objects": ["neuroscope"], "metadata": {"name": "toy-dd"}}):  # DeepDecipher's
        f.write_text(json.dumps(answer))
        with pytest.raises(InputFileError, match="DeepDecipher has no data"):
            await import_source(store, "neuroscope", f, model="toy-dd", progress=False)
    with pytest.raises(InputFileError, match="give --model"):
        await import_source(store, "neuroscope", DD / "all-1-3.json", progress=False)
    assert await snapshot(store) == before


class _Server:
    """Serves a folder over HTTP on 127.0.0.1 (loopback only), mapping /api/x to x.json."""

    def __init__(self, root: Path) -> None:
        root_s = str(root)

        class Handler(SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                local = super().translate_path(path)
                return local if Path(local).is_file() else local + ".json"

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=root_s))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_fetch_from_url_matches_local_import(store, tmp_path):
    with _Server(DD) as server:
        s = await import_source(store, "deepdecipher", server.url, model="toy-dd",
                                neurons=[(0, 0), (0, 1), (1, 2)], cache_dir=tmp_path / "cache", progress=False)
        assert s["units"] == 6
        # one resource by URL: the neuron comes from the URL path
        await import_source(store, "deepdecipher", f"{server.url}/toy-dd/neuron_explainer/1/2", model="toy-dd",
                            cache_dir=tmp_path / "cache", progress=False)
    fetched = await snapshot(store)
    await import_source(store, "deepdecipher", TOY, progress=False)
    assert await snapshot(store) == fetched


NS = Path(__file__).parent / "fixtures" / "neuroscope" / "toy-ns"


async def test_neuroscope_html_site(store, tmp_path):
    s = await import_source(store, "neuroscope", NS, progress=False)
    assert (s["model"], s["units"]) == ("toy-ns", 3)
    rows = await store.run("MATCH (n:Neuron)-[e:ACTIVATES_ON]->(x:Example) RETURN n.layer AS l, n.index AS i, "
                           "e.rank AS rank, e.activations AS acts, e.pivot AS pivot, e.max_activation AS mx, "
                           "x.tokens AS tokens, x.data_index AS di")
    got = {(r["l"], r["i"], r["rank"]): (r["tokens"], r["acts"], r["pivot"], r["mx"], r["di"]) for r in rows}
    want = {(l, n, i): (t["tokens"], t["activations"], t["max_activating_token_index"], t["max_activation"],
                        t["data_index"])
            for l, n in [(0, 0), (0, 1), (1, 2)] for i, t in enumerate(page(l, n)["texts"])}
    assert got == want
    model = (await store.run("MATCH (m:Model {key: 'toy-ns'}) RETURN m"))[0]["m"]
    # sizes only implied by the pages: kept as lower bounds, flagged, never as the sizes
    assert (model["source"], model.get("n_layers"), model.get("d_mlp")) == ("neuroscope", None, None)
    assert (model["n_layers_at_least"], model["d_mlp_at_least"], model["sizes_inferred"]) == (2, 3, True)
    assert s["warnings"] and "d_mlp >= 3" in s["warnings"][0] and "--model-info" in s["warnings"][0]
    before = await snapshot(store)
    # one page by itself, and a page cut short: a clear error, nothing written
    await import_source(store, "neuroscope", NS / "0" / "1.html", model="toy-ns", progress=False)
    assert await snapshot(store) == before
    site = tmp_path / "toy-ns"
    shutil.copytree(NS, site)
    html = (site / "1" / "2.html").read_text()
    (site / "1" / "2.html").write_text(html[: html.rindex("Full Text #2") + 40])
    with pytest.raises(InputFileError, match=r"1/2\.html, field 'texts\[2\]\.tokens': no full-text ColoredTokens"):
        await import_source(store, "neuroscope", site, progress=False)
    (site / "1" / "2.html").write_text(html.replace("<h4>Data Index: <b>77</b>", "<h4>Data Index: <b>x</b>"))
    with pytest.raises(InputFileError, match=r"field 'texts\[1\]\.data_index': expected one value, found 0"):
        await import_source(store, "neuroscope", site, progress=False)
    assert await snapshot(store) == before


async def test_layer_and_model_pages(store, tmp_path):
    """DeepDecipher's Neuroscope layer and model pages: rankings of neurons by activation range."""
    root = DD / "toy-dd-pages"
    s = await import_source(store, "deepdecipher", root, progress=False)
    assert (s["model"], s["units"], s["n_layers"], s["d_mlp"]) == ("toy-dd", 3, 2, 4)
    model_page = json.loads((root / "neuroscope.json").read_text())["data"]
    got = {(r["l"], r["i"]): r["v"] for r in await store.run(
        "MATCH (n:Neuron) RETURN n.layer AS l, n.index AS i, n.neuroscope_importance AS v")}
    assert got == {(e[0]["layer"], e[0]["neuron"]): e[1] for e in model_page["important_neurons"]}
    before = await snapshot(store)
    # one layer page alone, the model from its metadata
    await import_source(store, "deepdecipher", root / "neuroscope" / "1.json", progress=False)
    assert await snapshot(store) == before
    # a layer page listing a neuron of another layer: refused, nothing written
    bad = json.loads((root / "neuroscope" / "1.json").read_text())
    bad["data"]["important_neurons"][0][0]["layer"] = 0
    f = tmp_path / "neuroscope" / "1.json"
    f.parent.mkdir()
    f.write_text(json.dumps(bad))
    with pytest.raises(InputFileError, match=r"important_neurons\[0\]\[0\]\.layer.*not in layer 1"):
        await import_source(store, "deepdecipher", f, progress=False)
    bad["data"]["important_neurons"][1] = [{"layer": 1}, 0.5]
    f.write_text(json.dumps(bad))
    with pytest.raises(InputFileError, match=r"important_neurons\[1\]\[0\]\.neuron.*missing"):
        await import_source(store, "deepdecipher", f, layer=0, progress=False)
    assert await snapshot(store) == before


async def test_all_with_custom_service_names(store):
    """An `all` answer names services as the server configured them: read each by its data."""
    s = await import_source(store, "deepdecipher", DD / "all-custom-1-3.json", layer=1, neuron=3, progress=False)
    assert s["model"] == "toy-dd"  # from the answer's metadata service
    doc = json.loads((DD / "all-custom-1-3.json").read_text())
    n = await store.run("MATCH (:Neuron {key: 'toy-dd/1/3'})-[e:ACTIVATES_ON]->(x:Example) RETURN count(e) AS n")
    assert n[0]["n"] == len(doc["ns-pages"]["data"]["texts"])
    ex = await store.run("MATCH (:Neuron {key: 'toy-dd/1/3'})-[:EXPLAINED_BY]->(e) RETURN e.text AS t, e.score AS s")
    assert ex == [{"t": "words about cats and mats", "s": 0.41}]
    # the same answer under the standard names gives the same neuroscope data
    assert (await store.run("MATCH (p:PatternNode) RETURN count(p) AS n"))[0]["n"] == 0  # n2g answered an error
