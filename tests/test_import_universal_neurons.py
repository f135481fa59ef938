"""Universal Neurons import: the real statistics CSV, column variants, .pt summaries, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from loaders.registry import UnknownSource, import_source
from neurograph.errors import InputFileError

FIXTURES = Path(__file__).parent / "fixtures"
REAL = "universal-neurons/stanford-gpt2-small-a.universal.csv"


def _make_fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, b")
    return [repr(sorted(r.items())) for r in nodes], sorted(repr(sorted(r.items())) for r in edges)


@pytest.fixture
def toy_un(tmp_path) -> Path:
    """The toy Universal Neurons folder with its .pt summaries written beside the CSVs."""
    folder = tmp_path / "toy-un"
    shutil.copytree(FIXTURES / "universal-neurons" / "toy-un", folder)
    _make_fixtures().write_pt_fixtures(folder / "weights")
    return folder


async def test_real_file_values_and_counts(store, shared_data):
    path = shared_data / REAL
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = await import_source(store, "universal-neurons", path, progress=False)
    assert summary["model"] == "stanford-gpt2-small-a"
    assert summary["neurons"] == len(rows) == 1533
    got = await store.run("MATCH (n:Neuron {key: 'stanford-gpt2-small-a/0/7'}) RETURN n")
    assert got[0]["n"]["max_corr"] == pytest.approx(0.8027)
    assert got[0]["n"]["w_in_norm"] == pytest.approx(float(rows[0]["w_in_norm"]))
    assert got[0]["n"]["l2_penalty"] == pytest.approx(float(rows[0]["l2_penalty"]))
    model = (await store.run("MATCH (m:Model) RETURN m"))[0]["m"]
    assert model["source"] == "universal-neurons"
    assert model["n_layers"] == 1 + max(int(r["layer"]) for r in rows)
    # every neuron hangs under its layer, with the CSV's count per layer
    per_layer = await store.run("MATCH (l:Layer)-[:HAS_NEURON]->(n:Neuron) RETURN l.layer AS layer, count(n) AS n "
                                "ORDER BY layer")
    expected: dict[int, int] = {}
    for r in rows:
        expected[int(r["layer"])] = expected.get(int(r["layer"]), 0) + 1
    assert {r["layer"]: r["n"] for r in per_layer} == expected
    # a graph query over imported values: the most universal neuron
    best = max(rows, key=lambda r: float(r["max_corr"]))
    top = await store.run("MATCH (n:Neuron) RETURN n.layer AS l, n.index AS i ORDER BY n.max_corr DESC LIMIT 1")
    assert (top[0]["l"], top[0]["i"]) == (int(best["layer"]), int(best["neuron"]))


async def test_reimport_changes_nothing(store, shared_data):
    await import_source(store, "universal-neurons", shared_data / REAL, progress=False)
    first = await snapshot(store)
    await import_source(store, "universal-neurons", shared_data / REAL, progress=False)
    assert await snapshot(store) == first


async def test_model_info_sets_true_sizes(store, shared_data):
    await import_source(store, "universal-neurons", shared_data / REAL, model="gpt2-a",
                        model_info="n_layers=12,d_mlp=3072", progress=False)
    m = (await store.run("MATCH (m:Model {key: 'gpt2-a'})-[:HAS_LAYER]->(l:Layer) "
                         "RETURN m.d_mlp AS d, collect(DISTINCT l.n_neurons) AS n"))[0]
    assert m == {"d": 3072, "n": [3072]}
    with pytest.raises(InputFileError, match=r"model gpt2-b, field .d_mlp.: data has neuron \d+ but d_mlp is 100"):
        await import_source(store, "universal-neurons", shared_data / REAL, model="gpt2-b",
                            model_info={"n_layers": 12, "d_mlp": 100}, progress=False)
    assert await store.run("MATCH (m:Model {key: 'gpt2-b'}) RETURN m") == []


async def test_column_variants_and_weight_summaries(store, toy_un):
    import torch

    summary = await import_source(store, "universal-neurons", toy_un, progress=False)
    assert summary["model"] == "toy-un"
    mk = "toy-un"
    model = (await store.run("MATCH (m:Model {key: $k}) RETURN m", {"k": mk}))[0]["m"]
    assert (model["n_layers"], model["d_mlp"], model["n_heads"]) == (2, 4, 2)
    # aliases: input_weight_norm -> w_in_norm, weight_norm_penalty -> l2_penalty, neuron_ix -> neuron
    with open(toy_un / "weights" / "neuron_stats.csv", newline="") as fh:
        stats = {(int(r["layer"]), int(r["neuron_ix"])): r for r in csv.DictReader(fh)}
    n = (await store.run("MATCH (n:Neuron {key: 'toy-un/1/3'}) RETURN n"))[0]["n"]
    assert n["w_in_norm"] == pytest.approx(float(stats[(1, 3)]["input_weight_norm"]))
    assert n["w_out_norm"] == pytest.approx(float(stats[(1, 3)]["output_weight_norm"]))
    assert n["l2_penalty"] == pytest.approx(0.5) and n["labels"] == ["feature:the"]
    # the label's own flag is kept with the row, under its file, not as a neuron property
    assert "is_surpress" not in n and "feature" not in n
    given = dict(zip(n["sources"], map(json.loads, n["source_values"])))
    assert given["universal-neurons:prediction.csv"] == {
        "feature": ["the"], "is_surpress": [True], "max_corr": 0.73, "l2_penalty": 0.5, "sparsity": 0.15000000000000002}
    assert not any(k in n for k in ("", "Unnamed: 0", "input_weight_norm", "neuron_ix", "weight_norm_penalty"))
    assert "sparsity" not in (await store.run("MATCH (n:Neuron {key: 'toy-un/1/2'}) RETURN n"))[0]["n"]

    # neuron_comps.pt: every stored top/bottom entry is an edge with the stored cosine
    comps = torch.load(toy_un / "weights" / "neuron_comps.pt")
    edges = await store.run("MATCH (a:Neuron)-[e:COMPOSES]->(b:Neuron) RETURN a.key AS a, b.key AS b, "
                            "e.kind AS kind, e.weight AS w, e.rank AS rank")
    got = {(r["a"], r["b"], r["kind"]): (r["w"], r["rank"]) for r in edges}
    expected = {}
    for kind, d in comps.items():
        n_layers, d_mlp, k = d["top_neuron_value"].shape
        for side in ("top", "bottom"):
            for l in range(n_layers):
                for m in range(d_mlp):
                    for i in range(k):
                        dl, dn = divmod(int(d[f"{side}_neuron_ix"][l, m, i]), d_mlp)
                        expected[(f"{mk}/{l}/{m}", f"{mk}/{dl}/{dn}", kind)] = (
                            float(d[f"{side}_neuron_value"][l, m, i]), i if side == "top" else -(i + 1))
    assert got.keys() == expected.keys()
    for key, (w, rank) in expected.items():
        assert got[key][0] == pytest.approx(w, abs=1e-6) and got[key][1] == rank
    assert n["in_in_comp_mean"] == pytest.approx(float(comps["in_in"]["comp_mean"][1, 3]), abs=1e-6)

    # vocab_comps.pt: E_in -> input, U_out -> output token effects; tokens have ids, no text
    vocab = torch.load(toy_un / "weights" / "vocab_comps.pt")
    te = await store.run("MATCH (n:Neuron)-[e:TOKEN_EFFECT]->(t:Token) RETURN n.key AS n, t.id AS id, "
                         "t.text AS text, e.kind AS kind, e.weight AS w")
    exp_te = {}
    for comp, kind in (("E_in", "input"), ("U_out", "output")):
        d = vocab[comp]
        for side in ("top", "bottom"):
            for l in range(2):
                for m in range(4):
                    for i in range(d[f"{side}_vocab_ix"].shape[-1]):
                        exp_te[(f"{mk}/{l}/{m}", int(d[f"{side}_vocab_ix"][l, m, i]), kind)] = float(
                            d[f"{side}_vocab_value"][l, m, i])
    assert {(r["n"], r["id"], r["kind"]): r["w"] for r in te} == pytest.approx(exp_te, abs=1e-6)
    assert {r["text"] for r in te} == {None}

    # {k,q,v,o}_comps.pt: causal head composition
    k_comp = torch.load(toy_un / "weights" / "k_comps.pt").float()
    hk = await store.run("MATCH (n:Neuron)-[e:HEAD_COMPOSES {kind: 'K'}]->(h:Head) "
                         "RETURN n.layer AS l, n.index AS i, h.layer AS hl, h.head AS h, e.weight AS w")
    assert {(r["l"], r["i"], r["hl"], r["h"]): r["w"] for r in hk} == pytest.approx(
        {(0, i, 1, h): float(k_comp[0, i, 1, h]) for i in range(4) for h in range(2)}, abs=1e-3)
    ho = await store.run("MATCH (h:Head)-[e:HEAD_COMPOSES {kind: 'O'}]->(n:Neuron) RETURN h.layer AS hl, n.layer AS l")
    assert len(ho) == 4 * 2 + 4 * 4 and all(r["hl"] <= r["l"] for r in ho)


async def test_vocab_gives_token_texts_and_k_limits(store, toy_un, tmp_path):
    vocab = _make_fixtures().VOCAB
    await import_source(store, "universal-neurons", toy_un, model="toy-k", k=1, head_k=1, vocab=vocab,
                        progress=False)
    rows = await store.run("MATCH (a:Neuron {key: 'toy-k/0/0'})-[e]->(b) RETURN type(e) AS t, e.kind AS kind, "
                           "e.rank AS rank, b.text AS text, b.id AS id")
    composes = [r for r in rows if r["t"] == "COMPOSES"]
    assert sorted((r["kind"], r["rank"]) for r in composes) == sorted(
        (k, r) for k in ("in_in", "in_out", "out_in", "out_out") for r in (0, -1))
    tokens = [r for r in rows if r["t"] == "TOKEN_EFFECT"]
    assert len(tokens) == 4 and all(r["text"] == vocab[r["id"]] for r in tokens)
    assert len([r for r in rows if r["t"] == "HEAD_COMPOSES"]) == 3  # K, Q, V: the best later head each


def _truncate(src: Path, dst: Path, frac: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * frac)])
    return dst


async def test_bad_inputs_change_nothing(store, shared_data, toy_un, tmp_path):
    await import_source(store, "universal-neurons", toy_un, progress=False)
    before = await snapshot(store)
    real = (shared_data / REAL).read_text()
    header, first, *rest = real.splitlines()

    cases: list[tuple[Path, str]] = []
    p = tmp_path / "trunc.universal.csv"
    p.write_text(real[: len(real) // 2].rstrip("\n").rsplit(",", 3)[0] + "\n")
    cases.append((p, r"trunc\.universal\.csv.*columns \(truncated\?\)"))
    p = tmp_path / "typed.csv"
    p.write_text("\n".join([header, first, "x" + rest[0]] + rest[1:]) + "\n")
    cases.append((p, r"typed\.csv.*field 'layer \(line 3\)'.*integer"))
    p = tmp_path / "nocol.csv"
    p.write_text("layer,max_corr\n0,0.5\n")
    cases.append((p, r"nocol\.csv.*field 'neuron'"))
    p = tmp_path / "dupe.csv"
    p.write_text("\n".join([header, first, first]) + "\n")
    cases.append((p, r"dupe\.csv.*repeats neuron 0/7"))
    p = tmp_path / "page.json"
    p.write_text('{"texts": []}')
    cases.append((p, r"page\.json.*not a Universal Neurons file"))

    bad_pt = tmp_path / "badpt"
    shutil.copytree(toy_un, bad_pt)
    _truncate(toy_un / "weights" / "neuron_comps.pt", bad_pt / "weights" / "neuron_comps.pt")
    cases.append((bad_pt, r"neuron_comps\.pt.*truncated"))
    import torch

    shape = tmp_path / "shape"
    shutil.copytree(toy_un, shape)
    comps = torch.load(toy_un / "weights" / "neuron_comps.pt")
    comps["out_in"]["bottom_neuron_ix"] = comps["out_in"]["bottom_neuron_ix"][:, :2]
    torch.save(comps, shape / "weights" / "neuron_comps.pt")
    cases.append((shape, r"neuron_comps\.pt \[out_in\].*field 'bottom_neuron_ix'.*shape"))
    ix = tmp_path / "ix"
    shutil.copytree(toy_un, ix)
    comps = torch.load(toy_un / "weights" / "neuron_comps.pt")
    comps["in_in"]["top_neuron_ix"][1, 2, 0] = 99
    torch.save(comps, ix / "weights" / "neuron_comps.pt")
    cases.append((ix, r"\[in_in\].*field 'top_neuron_ix'.*\[0, 8\)"))
    # a good CSV beside a bad tensor: the CSV must not be written either
    heads = tmp_path / "heads"
    shutil.copytree(toy_un, heads)
    torch.save(torch.zeros(2, 4, 3, 2), heads / "weights" / "q_comps.pt")
    cases.append((heads, r"q_comps\.pt.*n_layers, d_mlp, n_layers, n_heads"))

    for path, pattern in cases:
        with pytest.raises(InputFileError, match=pattern):
            await import_source(store, "universal-neurons", path, model="toy-un", progress=False)
        assert await snapshot(store) == before, path


async def test_unknown_source_is_a_clear_error(store, shared_data):
    with pytest.raises(UnknownSource, match="unknown import source 'neuronpedia'.*universal-neurons"):
        await import_source(store, "neuronpedia", shared_data / REAL)


# --- the real published files (excerpts in upstream's layout, see the fixture's README) ---

INTERP = FIXTURES / "universal-neurons" / "interpretable_neurons"


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


async def test_real_folder_of_model_folders(store):
    summary = await import_source(store, "universal-neurons", INTERP, progress=False)
    assert [s["model"] for s in summary["models"]] == ["stanford-gpt2-medium-a", "stanford-gpt2-small-a"]
    assert summary["warnings"] == []
    # sizes are the models' true ones (the table of well-known models), not the largest index seen
    models = {r["k"]: r for r in await store.run(
        "MATCH (m:Model) RETURN m.key AS k, m.n_layers AS L, m.d_mlp AS d, m.sizes_inferred AS inf")}
    assert models["stanford-gpt2-medium-a"] == {"k": "stanford-gpt2-medium-a", "L": 24, "d": 4096, "inf": False}
    assert models["stanford-gpt2-small-a"] == {"k": "stanford-gpt2-small-a", "L": 12, "d": 3072, "inf": False}

    # prediction_neurons.csv: one row per neuron and feature; repeated neurons are labels
    pred = _csv_rows(INTERP / "stanford-gpt2-medium-a" / "prediction_neurons.csv")
    want: dict[str, list[str]] = {}
    for r in pred:
        want.setdefault(f"stanford-gpt2-medium-a/{r['layer']}/{r['neuron']}", []).append(f"feature:{r['feature']}")
    got = {r["k"]: r["labels"] for r in await store.run(
        "MATCH (n:Neuron {model: 'stanford-gpt2-medium-a'}) WHERE n.labels IS NOT NULL "
        "RETURN n.key AS k, n.labels AS labels")}
    assert got == want and len(pred) > len(want)
    n = (await store.run("MATCH (n:Neuron {key: 'stanford-gpt2-medium-a/22/1693'}) RETURN n"))[0]["n"]
    rows = dict(zip(n["sources"], map(json.loads, n["source_values"])))
    assert rows["universal-neurons:prediction_neurons.csv"] == {
        "feature": ["is_relative_pronoun", "is_interrogative_pronoun"], "is_surpress": [True, True]}
    # a neuron of both files has its statistics and its labels
    n = (await store.run("MATCH (n:Neuron {key: 'stanford-gpt2-medium-a/23/1538'}) RETURN n"))[0]["n"]
    uni = {r["neuron"]: r for r in _csv_rows(INTERP / "stanford-gpt2-medium-a" / "universal.csv")}
    assert n["max_corr"] == pytest.approx(float(uni["1538"]["max_corr"]))
    assert n["labels"] == ["feature:is_relative_pronoun", "feature:is_interrogative_pronoun"]

    # two files disagree on 0/39 (excess_corr .7197 vs .7509): both values stay, per file
    n = (await store.run("MATCH (n:Neuron {key: 'stanford-gpt2-small-a/0/39'}) RETURN n"))[0]["n"]
    by_file = dict(zip(n["sources"], map(json.loads, n["source_values"])))
    assert by_file["universal-neurons:high_excess_correlation.csv"]["excess_corr"] == pytest.approx(0.7197)
    assert by_file["universal-neurons:universal.csv"]["excess_corr"] == pytest.approx(0.7509)
    assert by_file["universal-neurons:high_excess_correlation.csv"]["w_in_norm"] == pytest.approx(0.5483689)

    # idempotent: the same import again changes nothing
    first = await snapshot(store)
    await import_source(store, "universal-neurons", INTERP, progress=False)
    assert await snapshot(store) == first


async def test_model_names_come_from_the_data_or_its_folder(store, tmp_path):
    # a file in a model's folder: that model
    s = await import_source(store, "universal-neurons", INTERP / "stanford-gpt2-small-a" / "high_excess_correlation.csv",
                            progress=False)
    assert s["model"] == "stanford-gpt2-small-a"
    before = await snapshot(store)
    # the same file anywhere else: refused, asking for --model (never a model "high_excess_correlation")
    loose = tmp_path / "high_excess_correlation.csv"
    shutil.copy(INTERP / "stanford-gpt2-small-a" / "high_excess_correlation.csv", loose)
    with pytest.raises(InputFileError, match="which model is this.*give --model"):
        await import_source(store, "universal-neurons", loose, progress=False)
    # a folder of model folders with --model: refused (which of them would it be?)
    with pytest.raises(InputFileError, match="holds 2 model folders.*drop --model"):
        await import_source(store, "universal-neurons", INTERP, model="x", progress=False)
    assert await snapshot(store) == before
    # with --model the loose file imports, and an unknown model's sizes are lower bounds only
    s = await import_source(store, "universal-neurons", loose, model="my-model", progress=False)
    assert (s["n_layers"], s["d_mlp"], s["d_mlp_at_least"]) == (None, None, 78)  # rows 0/39, 0/77
    assert "sizes unknown" in s["warnings"][0]
    m = (await store.run("MATCH (m:Model {key: 'my-model'}) RETURN m"))[0]["m"]
    assert (m.get("d_mlp"), m["d_mlp_at_least"], m["n_layers_at_least"], m["sizes_inferred"]) == (None, 78, 1, True)
    # --model-info makes them exact and drops the bounds
    await import_source(store, "universal-neurons", loose, model="my-model", model_info="n_layers=12,d_mlp=3072",
                        progress=False)
    m = (await store.run("MATCH (m:Model {key: 'my-model'}) RETURN m"))[0]["m"]
    assert (m["d_mlp"], m["n_layers"], m.get("d_mlp_at_least"), m["sizes_inferred"]) == (3072, 12, None, False)


async def test_a_bad_file_in_one_model_folder_writes_no_model(store, tmp_path):
    root = tmp_path / "interpretable_neurons"
    shutil.copytree(INTERP, root)
    p = root / "stanford-gpt2-small-a" / "universal.csv"
    p.write_text(p.read_text().replace("0,39,", "0,x39,", 1))
    with pytest.raises(InputFileError, match=r"universal\.csv.*neuron \(line 3\).*integer"):
        await import_source(store, "universal-neurons", root, progress=False)
    assert await store.run("MATCH (n) RETURN n LIMIT 1") == []
    # a repeated neuron without a label column is still refused: which row would be its value?
    p.write_text(p.read_text().replace("0,x39,", "0,7,", 1))
    with pytest.raises(InputFileError, match="repeats neuron 0/7.*no label column"):
        await import_source(store, "universal-neurons", root, progress=False)
    assert await store.run("MATCH (n) RETURN n LIMIT 1") == []


async def test_api_shows_provenance_and_labels(store, settings):
    import httpx

    from neurograph.api import create_app

    await import_source(store, "universal-neurons", INTERP, progress=False)
    app = create_app(settings, store)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    q = """query($m: String!, $l: Int!, $i: Int!) { neuron(model: $m, layer: $l, index: $i) {
             labels provenance { source values } } }"""
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = (await c.post("/graphql", json={"query": q, "variables": {"m": "stanford-gpt2-small-a", "l": 0, "i": 39}})).json()
        assert not r.get("errors"), r
        prov = {p["source"]: p["values"] for p in r["data"]["neuron"]["provenance"]}
        assert prov["universal-neurons:universal.csv"]["excess_corr"] == pytest.approx(0.7509)
        assert prov["universal-neurons:high_excess_correlation.csv"]["excess_corr"] == pytest.approx(0.7197)
        assert r["data"]["neuron"]["labels"] == []
        r = (await c.post("/graphql", json={"query": q, "variables": {"m": "stanford-gpt2-medium-a", "l": 23, "i": 5}})).json()
        assert r["data"]["neuron"]["labels"] == ["feature:contains_open_bracket", "feature:contains_open_paren"]
        assert r["data"]["neuron"]["provenance"] == [{"source": "universal-neurons:prediction_neurons.csv", "values": {
            "feature": ["contains_open_bracket", "contains_open_paren"], "is_surpress": [False, False]}}]


async def test_a_rerun_that_changes_nothing_says_so(store, shared_data, tmp_path):
    from loaders.importing import remember_imports

    plain = await import_source(store, "universal-neurons", shared_data / REAL, progress=False)
    assert "status" not in plain  # nothing remembered: no claim either way
    with remember_imports(tmp_path / "imports.json"):
        first = await import_source(store, "universal-neurons", shared_data / REAL, progress=False)
        assert first["status"] == "written"  # no digest yet
        before = await snapshot(store)
        again = await import_source(store, "universal-neurons", shared_data / REAL, progress=False)
        assert again["status"] == "unchanged" and again["neurons"] == first["neurons"]
        assert await snapshot(store) == before  # the digest is kept beside the graph, not in it
        # another file of the same model writes something new
        other = await import_source(store, "universal-neurons",
                                    INTERP / "stanford-gpt2-small-a" / "high_excess_correlation.csv", progress=False)
        assert other["status"] == "written"
        assert (await import_source(store, "universal-neurons", INTERP, progress=False))["status"] == "written"
        assert (await import_source(store, "universal-neurons", INTERP, progress=False))["status"] == "unchanged"
        # a write by anything else in between: no longer vouched for
        await store.run("MATCH (n:Neuron {key: 'stanford-gpt2-small-a/0/39'}) SET n.max_corr = 0", write=True)
        assert (await import_source(store, "universal-neurons", INTERP, progress=False))["status"] == "written"


def test_cli_errors_keep_whole_paths_and_warnings_show(tmp_path, settings, capsys, monkeypatch):
    """Not a terminal: an error naming a long path is one line; warnings and 'unchanged' are said."""
    from neurograph.cli import main

    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "high_excess_correlation.csv"
    deep.parent.mkdir(parents=True)
    shutil.copy(INTERP / "stanford-gpt2-small-a" / "high_excess_correlation.csv", deep)
    monkeypatch.setenv("NEUROGRAPH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEUROGRAPH_GRAPH", settings.graph)
    assert main(["import", "universal-neurons", str(deep)]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert str(deep) in line and "give --model" in line
    assert main(["import", "universal-neurons", str(deep), "--model", "cli-model"]) == 0
    err = capsys.readouterr().err
    assert "warning: model cli-model: sizes unknown" in err and "--model-info" in err
    assert main(["import", "universal-neurons", str(deep), "--model", "cli-model"]) == 0
    assert "unchanged: the import wrote the same rows" in capsys.readouterr().err
