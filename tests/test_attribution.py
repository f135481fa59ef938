"""Attribution graphs: the frozen-linear model equals the model, a logit decomposes exactly into
its sources' effects, neuron-to-neuron effects match finite differences, a planted circuit
survives pruning (each on a Llama-style and a GPT-2-style tiny model), traces and corpus
circuits are stored and queryable, and on SmolLM2 a prompt's graph reaches its predicted token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import httpx
import networkx as nx
import pytest
import torch

from loaders.attribution import AttributionError, _rows, attribute, corpus_circuits, frozen_forward, merge_graphs
from loaders.model import LoadedModel, tiny_model
from loaders.synthetic import write_synthetic_graph
from neurograph.api.app import create_app
from neurograph.domain import ModelInfo, layer_key, neuron_key, token_key
from neurograph.traces import save_trace

PROMPT = "In the beginning God created the heaven"


@pytest.fixture(scope="module", params=[True, False], ids=["llama", "gpt2"])
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def model(arch):
    m = tiny_model(seed=0, gated=arch)
    if not arch:  # GPT-2 starts with zero biases: give them values, so that they are sources to count
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in m.bridge.original_model.named_parameters():
                if name.endswith("bias"):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return m


def test_frozen_forward_is_the_model_and_a_logit_decomposes_exactly(model, arch):
    ids = model.to_tokens(PROMPT, prepend_bos=True)
    fz = frozen_forward(model, ids)
    with torch.no_grad():
        ref = model.bridge.original_model(torch.tensor([ids])).logits[0]
    assert torch.allclose(fz.logits.detach(), ref, atol=1e-5)
    for t in (int(ref[-1].argmax()), 17):
        y = fz.logits[-1, t]
        neu, tok, bias = _rows(fz, [y])
        # tokens, neurons and the biases are all the sources; a Llama-style model has no biases
        assert float(neu.sum() + tok.sum() + bias.sum()) == pytest.approx(float(y.detach()), rel=1e-4, abs=1e-4)
        assert (float(bias[0]) == 0) == arch


def test_neuron_effects_match_finite_differences(model):
    ids = model.to_tokens(PROMPT, prepend_bos=True)
    fz = frozen_forward(model, ids)
    target = (1, len(ids) - 1, 5)
    y = fz.acts_in[target[0]][target[1], target[2]]
    neu, _, _ = _rows(fz, [y])
    sources = [(0, len(ids) - 1, i) for i in neu[0, 0, len(ids) - 1].abs().topk(3).indices.tolist()]
    sources += [(0, 2, int(neu[0, 0, 2].abs().argmax()))]
    for l, p, i in sources:
        eps = 1e-3
        a = float(fz.acts[l][p, i].detach())
        up = frozen_forward(model, ids, {(l, p, i): eps}, frozen=fz).acts_in[target[0]][target[1], target[2]]
        down = frozen_forward(model, ids, {(l, p, i): -eps}, frozen=fz).acts_in[target[0]][target[1], target[2]]
        fd = float((up - down).detach()) / (2 * eps)
        assert float(neu[0, l, p, i]) == pytest.approx(a * fd, rel=2e-2, abs=1e-6)


def _plant(model, prompt: str, target_token: int, gated: bool) -> tuple[int, int]:
    """Wire the tiny model so that the last token drives neuron A (layer 0), A drives B (layer 1),
    and B raises the target token's logit. Returns (A, B)."""
    hf = model.bridge.original_model
    A, B = 11, 22
    ids = model.to_tokens(prompt, prepend_bos=True)
    v = torch.randn(model.info.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        if gated:
            l0, l1 = hf.model.layers[0].mlp, hf.model.layers[1].mlp
            emb, w = hf.model.embed_tokens.weight[ids[-1]], hf.lm_head.weight[target_token]
            u, v = emb / emb.norm(), v / v.norm()
            l0.gate_proj.weight[A] = u * 0.6
            l0.up_proj.weight[A] = u * 0.6
            l0.down_proj.weight[:, A] = v * 4.0
            l1.gate_proj.weight[B] = v * 0.6
            l1.up_proj.weight[B] = v * 0.6
            l1.down_proj.weight[:, B] = w / w.norm() * 6.0
        else:  # Conv1D weights are [in, out]; LayerNorm centres, so the directions are centred too
            l0, l1 = (b.mlp.original_component for b in hf.transformer.h[:2])
            emb, w = hf.transformer.wte.weight[ids[-1]], hf.transformer.wte.weight[target_token]
            u = emb - emb.mean()
            u, v = u / u.norm(), (v - v.mean()) / (v - v.mean()).norm()
            l0.c_fc.weight[:, A], l0.c_fc.bias[A] = u * 0.6, 0.0
            l0.c_proj.weight[A] = v * 4.0
            l1.c_fc.weight[:, B], l1.c_fc.bias[B] = v * 0.6, 0.0
            l1.c_proj.weight[B] = (w - w.mean()) / (w - w.mean()).norm() * 6.0
    return A, B


def test_a_planted_circuit_survives_pruning(arch):
    model = tiny_model(seed=1, gated=arch)
    target = model.to_tokens(" earth")[0]
    A, B = _plant(model, PROMPT, target, arch)
    g = attribute(model, PROMPT, " earth", max_neurons=100)
    T = len(g.tokens)
    ids = {n["id"] for n in g.nodes}
    a, b, last = f"n0.{T - 1}.{A}", f"n1.{T - 1}.{B}", f"t{T - 1}"
    assert {a, b, last, "logit"} <= ids
    edges = {(e["source"], e["target"]): e["weight"] for e in g.edges}
    assert edges[(b, "logit")] > 0 and edges[(a, b)] > 0 and edges[(last, a)] > 0
    # B is the strongest direct effect on the target, and the graph is a DAG reaching it
    into_logit = sorted(((w, s) for (s, t), w in edges.items() if t == "logit"), reverse=True)
    assert into_logit[0][1] == b
    G = nx.DiGraph(list(edges))
    assert nx.is_directed_acyclic_graph(G) and nx.has_path(G, last, "logit")


def test_other_architectures_are_refused_clearly(model):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    neox = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=32))
    other = LoadedModel("pythia-tiny", SimpleNamespace(original_model=neox), model.tokenizer, model.info)
    with pytest.raises(AttributionError, match="pythia-tiny is neither"):
        attribute(other, PROMPT)


async def test_traces_and_corpus_circuits_are_stored_and_served(store, settings, model):
    name = model.name
    await write_synthetic_graph(store, name, n_layers=model.info.n_layers, d_mlp=model.info.d_mlp, n_heads=0,
                                d_vocab=50, k=2, n_examples=1)
    g = attribute(model, PROMPT, None, max_neurons=50).as_dict()
    await store.write("upsert_tokens", [{"key": token_key(name, n["token_id"]), "model": name, "id": n["token_id"],
                                         "text": n["token"]} for n in g["nodes"] if n["kind"] != "neuron"])
    key = await save_trace(store, g)
    assert await save_trace(store, g) == key  # idempotent
    [row] = await store.run("MATCH (t:Trace {key: $k})-[:HAS_NODE]->(n:TraceNode) RETURN count(n) AS n", {"k": key})
    assert row["n"] == len(g["nodes"])
    # Cypher: which traces use a neuron, and the neurons between a token and the logit
    used = next(n for n in g["nodes"] if n["kind"] == "neuron")
    nk = neuron_key(name, used["layer"], used["index"])
    rows = await store.query("traces", model=name, neuron=nk, limit=10)
    assert [r["t"]["key"] for r in rows] == [key]
    mediators = await store.run(
        "MATCH (t:Trace {key: $k})-[:HAS_NODE]->(s:TraceNode {kind: 'token'})-[:EFFECT]->(m:TraceNode {kind: 'neuron'})"
        "-[:EFFECT]->(:TraceNode {kind: 'logit'}) MATCH (m)-[:INSTANCE_OF]->(x:Neuron) RETURN DISTINCT x.key AS k",
        {"k": key})
    assert mediators

    summary = await corpus_circuits(store, model, n_prompts=6, prompt_len=12, max_neurons=40, progress=False)
    assert summary["prompts"] == 6 and summary["neuron_edges"] > 0
    [row] = await store.run("MATCH (:Neuron {model: $m})-[e:ATTRIBUTES_TO]->() RETURN count(e) AS n, "
                            "min(e.prompts) AS lo, max(e.prompts) AS hi", {"m": name})
    assert row == {"n": summary["neuron_edges"] + summary["token_edges"], "lo": 6, "hi": 6}
    # roles and communities over the circuits, stored beside the others
    [topo] = await store.run("MATCH (n:Neuron {model: $m}) RETURN count(n.circuit_role) AS roles, "
                             "count(n.circuit_community) AS communities", {"m": name})
    assert topo == {"roles": summary["topology"]["nodes"], "communities": summary["topology"]["nodes"]} != {
        "roles": 0, "communities": 0}
    again = await corpus_circuits(store, model, n_prompts=6, prompt_len=12, max_neurons=40, progress=False)
    assert again["skipped"] and again["neuron_edges"] == summary["neuron_edges"]
    # the CLI asks before loading a model (a tiny model's name cannot be loaded: it would fail)
    env = {**os.environ, "NEUROGRAPH_DATA_DIR": str(settings.data_dir), "NEUROGRAPH_GRAPH": settings.graph}
    cli = [sys.executable, "-m", "neurograph", "circuits", name, "--prompts", "6", "--prompt-len", "12",
           "--max-neurons", "40"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "already computed" in done.stdout + done.stderr, done.stderr
    other = subprocess.run([*cli, "--k", "5"], env=env, capture_output=True, text=True, timeout=120)  # loads: fails
    assert other.returncode == 1 and "already computed" not in other.stdout + other.stderr, other.stderr
    app = create_app(settings, store, web_dir=None, cache_entries=0)
    q = """query($k: String!, $m: String!, $l: Int!, $i: Int!) {
      trace(key: $k) { prompt target nodes { id kind neuron { key } } edges { source target weight } }
      traces(model: $m) { key }
      neuron(model: $m, layer: $l, index: $i) { attributes(first: 5) { edges { weight node { key } } }
                                                attributedBy(first: 5) { edges { weight } } } }"""
    [src] = await store.run("MATCH (a:Neuron)-[e:ATTRIBUTES_TO {kind: 'neuron'}]->(:Neuron) RETURN a.layer AS l, "
                            "a.index AS i ORDER BY e.abs_mean DESC LIMIT 1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = (await c.post("/graphql", json={"query": q, "variables": {"k": key, "m": name, **src}})).json()
    assert "errors" not in r, r
    t = r["data"]["trace"]
    assert t["prompt"] == PROMPT and len(t["nodes"]) == len(g["nodes"]) and len(t["edges"]) == len(g["edges"])
    assert {n["id"] for n in t["nodes"]} == {n["id"] for n in g["nodes"]}
    assert r["data"]["neuron"]["attributes"]["edges"]


def test_merge_counts_and_means():
    from loaders.attribution import AttributionGraph

    def g(w):
        return AttributionGraph("m", "p", [], [], "x", 7, 1.0, nodes=[
            {"id": "a", "kind": "neuron", "layer": 0, "index": 1}, {"id": "b", "kind": "neuron", "layer": 1, "index": 2},
            {"id": "logit", "kind": "logit"}], edges=[{"source": "a", "target": "b", "weight": w},
                                                     {"source": "b", "target": "logit", "weight": 2 * w}])
    nn, nt = merge_graphs([g(1.0), g(-3.0), AttributionGraph("m", "q", [], [], "x", 7, 1.0)])
    assert nn == [{"src_layer": 0, "src_index": 1, "mean": -2 / 3, "abs_mean": 4 / 3, "count": 2, "prompts": 3,
                   "dst_layer": 1, "dst_index": 2}]
    assert nt[0]["token_id"] == 7 and nt[0]["count"] == 2


@pytest.mark.model
async def test_smollm2_graph_reaches_the_predicted_token_and_is_stored(store):
    from loaders.model import load_model

    model = load_model()
    g = attribute(model, "The capital of France is", None, max_neurons=150)
    assert g.target == " Paris"
    G = nx.DiGraph([(e["source"], e["target"]) for e in g.edges])
    assert any(nx.has_path(G, f"t{p}", "logit") for p in range(1, len(g.tokens)) if f"t{p}" in G)
    assert any(n["kind"] == "neuron" for n in g.nodes)
    d = g.as_dict()
    name = model.name
    await store.write("upsert_models", [ModelInfo(name, 30, 1536).row()])
    await store.write("upsert_layers", [{"key": layer_key(name, l), "model": name, "layer": l, "n_neurons": 1536}
                                        for l in range(30)])
    await store.write("upsert_neurons", [
        {"key": neuron_key(name, n["layer"], n["index"]), "model": name, "layer": n["layer"], "index": n["index"],
         "layer_key": layer_key(name, n["layer"]), "props": {}} for n in d["nodes"] if n["kind"] == "neuron"])
    key = await save_trace(store, d)
    rows = await store.run("MATCH (:Trace {key: $k})-[:HAS_NODE]->(:TraceNode)-[:INSTANCE_OF]->(x:Neuron) "
                           "RETURN count(DISTINCT x) AS n", {"k": key})
    assert rows[0]["n"] == len({(n["layer"], n["index"]) for n in d["nodes"] if n["kind"] == "neuron"})


async def test_corpus_circuits_resume_from_their_checkpoint(store, tmp_path):
    """Graphs already in the checkpoint are not made again (a marked graph's edge is merged as
    it is); a half-written last line (a killed run) is made again; the checkpoint goes when the
    edges are stored."""
    model = tiny_model(seed=3)
    name = model.name
    await write_synthetic_graph(store, name, n_layers=model.info.n_layers, d_mlp=model.info.d_mlp, n_heads=0,
                                d_vocab=50, k=2, n_examples=1)
    from loaders.attribution import corpus_prompts

    first = attribute(model, corpus_prompts(model, 1, 10)[0], None, max_neurons=20, max_tokens=18).as_dict()
    first["nodes"] = [{"id": "a", "kind": "neuron", "layer": 0, "index": 7}, {"id": "b", "kind": "neuron", "layer": 1,
                                                                              "index": 9}]
    first["edges"] = [{"source": "a", "target": "b", "weight": 300.0}]  # a mark no real graph has
    path = tmp_path / "circuits.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps(first)[:40])
    # another prompt length's checkpoint is not taken for this run's: the graph is made anew
    await corpus_circuits(store, model, n_prompts=1, prompt_len=12, max_neurons=20, checkpoint=path, progress=False)
    assert not path.exists()
    [other] = await store.run("MATCH (:Neuron {model: $m})-[e:ATTRIBUTES_TO]->() RETURN count(e) AS n, "
                              "max(abs(e.mean)) AS top", {"m": name})
    assert other["n"] > 0 and other["top"] < 100.0  # no trace of the mark
    path.write_text(json.dumps(first) + "\n" + json.dumps(first)[:40])
    summary = await corpus_circuits(store, model, n_prompts=3, prompt_len=10, max_neurons=20, checkpoint=path,
                                    progress=False)
    assert summary["prompts"] == 3 and not path.exists()
    [row] = await store.run("MATCH (:Neuron {key: $a})-[e:ATTRIBUTES_TO]->(:Neuron {key: $b}) RETURN e.mean AS mean, "
                            "e.count AS count, e.prompts AS prompts",
                            {"a": neuron_key(name, 0, 7), "b": neuron_key(name, 1, 9)})
    assert row["prompts"] == 3 and row["count"] >= 1 and row["mean"] >= 100.0
