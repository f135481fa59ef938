"""OpenAI automated-interpretability import: the published tree, single files, vocab, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from loaders.registry import import_source
from neurograph.domain import example_key
from neurograph.errors import InputFileError

OAI = Path(__file__).parent / "fixtures" / "openai"


async def snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN labels(n)[0] AS label, n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, b")
    return [repr(sorted(r.items())) for r in nodes], sorted(repr(sorted(r.items())) for r in edges)


def load(rel: str) -> dict:
    text = (OAI / rel).read_text()
    return json.loads(text.splitlines()[0] if rel.endswith(".jsonl") else text)


async def test_openai_tree(store):
    summary = await import_source(store, "openai", OAI, model="toy-oai", progress=False)
    assert summary["units"] == 8
    model = (await store.run("MATCH (m:Model {key: 'toy-oai'}) RETURN m"))[0]["m"]
    # inferred from the neurons seen: lower bounds, flagged, not sizes
    assert (model["source"], model.get("n_layers"), model["n_layers_at_least"], model["d_mlp_at_least"]) == (
        "openai", None, 2, 4)

    # NeuronRecord: moments (NaN kurtosis left out), records as examples keyed by token hash
    rec = load("collated-activations/0/1.json")
    n = (await store.run("MATCH (n:Neuron {key: 'toy-oai/0/1'}) RETURN n"))[0]["n"]
    assert (n["mean"], n["var"], n["skew"]) == (rec["mean"], rec["variance"], rec["skewness"])
    assert math.isnan(json.loads((OAI / "collated-activations/0/1.json").read_text())["kurtosis"]) and "kurt" not in n
    assert n["quantiles"] == rec["quantile_boundaries"]  # stored under the graph's names (domain.neuron_props)
    assert n["max"] == max(max(r["activations"]) for r in rec["most_positive_activation_records"])
    edges = await store.run("MATCH (:Neuron {key: 'toy-oai/0/1'})-[e:ACTIVATES_ON]->(x:Example) "
                            "RETURN e.kind AS kind, e.rank AS rank, e.quantile AS q, e.activations AS acts, "
                            "e.pivot AS pivot, x.key AS x ORDER BY kind, rank")
    expected = [("max", i, None, r) for i, r in enumerate(rec["most_positive_activation_records"])]
    randoms = [(None, r) for r in rec["random_sample"]] + [
        (q, r) for q, group in enumerate(rec["random_sample_by_quantile"]) for r in group]
    expected += [("random", i, q, r) for i, (q, r) in enumerate(randoms)]
    assert [(e["kind"], e["rank"], e["q"], e["acts"], e["x"]) for e in edges] == [
        (k, i, q, r["activations"], example_key("toy-oai", tokens=r["tokens"])) for k, i, q, r in expected]
    top = rec["most_positive_activation_records"][0]["activations"]
    assert edges[0]["pivot"] == top.index(max(top))
    n_examples = await store.run("MATCH (x:Example) RETURN count(x) AS n")
    all_records = [r for l, n_ in [(0, 1), (1, 3)] for r in _records(load(f"collated-activations/{l}/{n_}.json"))]
    assert n_examples[0]["n"] == len({tuple(r["tokens"]) for r in all_records})

    # explanations with their three scores
    sim = load("explanations/0/1.jsonl")
    ex = await store.run("MATCH (:Neuron {key: 'toy-oai/0/1'})-[:EXPLAINED_BY]->(e:Explanation) RETURN e "
                         "ORDER BY e.rank")
    first = sim["scored_explanations"][0]
    assert ex[0]["e"]["text"] == first["explanation"]
    assert ex[0]["e"]["score"] == first["scored_simulation"]["ev_correlation_score"]
    assert ex[0]["e"]["rsquared_score"] == first["scored_simulation"]["rsquared_score"]
    assert ex[0]["e"]["absolute_dev_explained_score"] == first["scored_simulation"]["absolute_dev_explained_score"]
    assert len(ex) == len(sim["scored_explanations"])
    assert (await store.run("MATCH (e:Explanation) RETURN count(e) AS n"))[0]["n"] == 4

    # related neurons: c_fc neurons feed this one, this one feeds c_proj neurons
    vw = await store.run("MATCH (a:Neuron)-[e:COMPOSES {kind: 'virtual'}]->(b:Neuron) "
                         "RETURN a.key AS a, b.key AS b, e.weight AS w")
    got = {(r["a"], r["b"]): r["w"] for r in vw}
    want = {}
    for l, n_ in [(1, 3), (0, 1)]:
        rel = load(f"related-neurons/weight-based/{l}/{n_}.json")
        me = f"toy-oai/{l}/{n_}"
        for part in ("c_fc", "c_proj"):
            for sign in ("positive", "negative"):
                for name, w in zip(rel[part][f"top_{sign}_neurons"], rel[part][f"top_{sign}_weights"]):
                    other = "toy-oai/" + name.replace("_", "/")
                    want[(other, me) if part == "c_fc" else (me, other)] = w
    assert got == want

    # related tokens without a vocabulary: lists on the neuron, no Token nodes
    act = load("related-tokens/activation-based/0/1.json")
    wb = load("related-tokens/weight-based/0/1.json")
    assert n["activation_tokens"] == act["tokens"] and n["activation_token_values"] == act["average_activations"]
    assert n["output_negative_tokens"] == wb["output_negative"]["tokens"]
    assert await store.run("MATCH (t:Token) RETURN t") == []


def _records(rec: dict) -> list[dict]:
    return (rec["most_positive_activation_records"] + rec["random_sample"]
            + [r for g in rec["random_sample_by_quantile"] for r in g])


async def test_vocab_draws_token_edges_and_reimport_is_stable(store):
    await import_source(store, "openai", OAI, model="toy-oai", vocab=OAI / "vocab.json", progress=False)
    first = await snapshot(store)
    vocab = json.loads((OAI / "vocab.json").read_text())
    rows = await store.run("MATCH (:Neuron {key: 'toy-oai/0/1'})-[e:TOKEN_EFFECT]->(t:Token) "
                           "RETURN e.kind AS kind, e.weight AS w, e.rank AS rank, t.id AS id, t.text AS text")
    assert all(vocab[r["id"]] == r["text"] for r in rows)
    act = load("related-tokens/activation-based/0/1.json")
    assert sorted((r["text"], r["w"]) for r in rows if r["kind"] == "activation") == sorted(
        zip(act["tokens"], act["average_activations"]))
    wb = load("related-tokens/weight-based/0/1.json")
    outputs = {(r["text"], r["rank"]): r["w"] for r in rows if r["kind"] == "output"}
    assert outputs == {**{(t, i): w for i, (t, w) in enumerate(zip(wb["output_positive"]["tokens"],
                                                                   wb["output_positive"]["strengths"]))},
                       **{(t, -(i + 1)): w for i, (t, w) in enumerate(zip(wb["output_negative"]["tokens"],
                                                                          wb["output_negative"]["strengths"]))}}
    await import_source(store, "openai", OAI, model="toy-oai", vocab=OAI / "vocab.json", progress=False)
    assert await snapshot(store) == first


async def test_single_file_and_model_info(store):
    s = await import_source(store, "openai", OAI / "explanations" / "1" / "3.jsonl", model="gpt2-xl",
                            model_info={"n_layers": 48, "d_mlp": 6400}, progress=False)
    assert s["explanations"] == 2
    m = (await store.run("MATCH (m:Model {key: 'gpt2-xl'}) RETURN m"))[0]["m"]
    assert (m["n_layers"], m["d_mlp"]) == (48, 6400)
    # related tokens name no neuron: it comes from the path
    await import_source(store, "openai", OAI / "related-tokens" / "activation-based" / "0" / "1.json",
                        model="gpt2-xl", progress=False)
    n = (await store.run("MATCH (n:Neuron {key: 'gpt2-xl/0/1'}) RETURN n"))[0]["n"]
    assert n["activation_tokens"] == load("related-tokens/activation-based/0/1.json")["tokens"]


def _tree(tmp_path: Path, rel: str, text: str) -> Path:
    root = tmp_path / "oai"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(OAI, root)
    (root / rel).write_text(text)
    return root


def _edit(rel: str, fn) -> str:
    doc = load(rel)
    fn(doc)
    return json.dumps(doc)


async def test_bad_inputs_change_nothing(store, tmp_path):
    await import_source(store, "openai", OAI, model="toy-oai", progress=False)
    before = await snapshot(store)
    rec = "collated-activations/1/3.json"
    cases = [
        (rec, (OAI / rec).read_text()[:300], r"1/3\.json: not valid JSON \(truncated\?\)"),
        ("explanations/0/1.jsonl", (OAI / "explanations/0/1.jsonl").read_text()[:200],
         r"0/1\.jsonl: line 1 is not valid JSON \(truncated\?\)"),
        (rec, _edit(rec, lambda d: d["most_positive_activation_records"][1].__setitem__("tokens", "the cat")),
         r"field 'most_positive_activation_records\[1\]\.tokens': expected a list, got a string"),
        (rec, _edit(rec, lambda d: d["random_sample_by_quantile"][1][0]["activations"].pop()),
         r"field 'random_sample_by_quantile\[1\]\[0\]\.activations'"),
        (rec, _edit(rec, lambda d: d["neuron_id"].__setitem__("layer_index", 0)),
         r"field 'neuron_id': record is neuron 0/3 but its path says 1/3"),
        ("explanations/1/3.jsonl", _edit("explanations/1/3.jsonl",
                                         lambda d: d["scored_explanations"][0].pop("scored_simulation")),
         r"field 'scored_explanations\[0\]\.scored_simulation': missing"),
        ("related-neurons/weight-based/1/3.json", _edit("related-neurons/weight-based/1/3.json",
                                                        lambda d: d["c_fc"]["top_positive_neurons"].__setitem__(0, "0-1")),
         r"field 'c_fc\.top_positive_neurons\[0\]': expected 'layer_neuron'"),
        ("related-tokens/weight-based/0/1.json", _edit("related-tokens/weight-based/0/1.json",
                                                       lambda d: d["input_positive"]["strengths"].append(0.1)),
         r"field 'input_positive\.strengths': 2 tokens but 3 strengths"),
        ("related-tokens/activation-based/0/1.json", json.dumps({"tokens": [" a"]}),
         r"field 'average_activations': missing"),
    ]
    for rel, text, pattern in cases:
        root = _tree(tmp_path, rel, text)
        with pytest.raises(InputFileError, match=pattern):
            await import_source(store, "openai", root, model="toy-oai", progress=False)
        assert await snapshot(store) == before, rel
    with pytest.raises(InputFileError, match="give --model"):
        await import_source(store, "openai", OAI / rec, progress=False)
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"texts": []}))
    with pytest.raises(InputFileError, match=r"x\.json.*not an automated-interpretability file"):
        await import_source(store, "openai", other, model="toy-oai", progress=False)
    with pytest.raises(InputFileError, match="model-info.*unknown key"):
        await import_source(store, "openai", OAI, model="toy-oai", model_info="layers=3", progress=False)
    assert await snapshot(store) == before


class _CrashAfter:
    """The real store, cut off after n writes: an import interrupted half-way."""

    def __init__(self, store, n: int) -> None:
        self.store, self.left = store, n

    async def write(self, name: str, rows, **kw):
        if self.left == 0:
            raise ConnectionError("simulated crash")
        self.left -= 1
        return await self.store.write(name, rows, **kw)


async def test_interrupted_import_completes_on_rerun(store, settings):
    from neurograph.store import open_store

    with pytest.raises(ConnectionError):
        await import_source(_CrashAfter(store, 5), "openai", OAI, model="toy-oai", progress=False)
    partial = await snapshot(store)
    await import_source(store, "openai", OAI, model="toy-oai", progress=False)
    resumed = await snapshot(store)
    clean_store = await open_store(settings.with_(graph=settings.graph + "_clean"))
    try:
        await import_source(clean_store, "openai", OAI, model="toy-oai", progress=False)
        clean = await snapshot(clean_store)
    finally:
        await clean_store.clear()
        await clean_store.close()
    assert partial != clean and len(partial[0]) > 0
    assert resumed == clean
