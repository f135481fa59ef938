"""build_connectivity writes composition, head, token and correlation edges to a real FalkorDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from loaders.connectivity import build_connectivity
from loaders.weights import ModelWeights
from neurograph.domain import ModelInfo, head_key, neuron_key, token_key

L, DM, D, H, V = 3, 16, 8, 4, 30
N = L * D


@dataclass
class StandIn:
    """What build_connectivity reads from a LoadedModel, for weights built by hand."""

    name: str
    info: ModelInfo
    tokenizer: Any = None
    bridge: Any = None


def planted(seed: int = 2) -> tuple[ModelWeights, int, int]:
    """Random weights where neuron A = 0/1 writes exactly along neuron B = 2/5's input."""
    w = ModelWeights.random(n_layers=L, d_model=DM, d_mlp=D, n_heads=H, d_vocab=V, n_kv_heads=2, seed=seed)
    u = torch.randn(DM, generator=torch.Generator().manual_seed(9))
    u /= u.norm()
    w.W_out[0, 1] = 3 * u
    w.W_in[2, :, 5] = 3 * u / w.ln2[2]
    return w, 0 * D + 1, 2 * D + 5


def stand_in(name: str = "tiny") -> StandIn:
    return StandIn(name, ModelInfo(name, L, D, d_model=DM, n_heads=H, d_vocab=V, act_fn="silu"))


def planted_acts() -> torch.Tensor:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((800, N)).astype(np.float32)
    x[:, 3] = x[:, 20] + 0.1 * rng.standard_normal(800)  # neuron 0/3 tracks neuron 2/4
    return torch.from_numpy(x)


async def test_build_writes_every_kind(store):
    w, a, b = planted()
    acts = planted_acts()
    m = stand_in()
    rep = await build_connectivity(store, m, weights=w, activations=lambda: [acts[:400], acts[400:]],
                                   k=3, k_heads=2, k_tokens=4, progress=False)
    assert rep["composition"] > 0 and rep["heads"] > 0 and rep["tokens"] > 0 and rep["correlation"] > 0

    ka, kb = neuron_key("tiny", 0, 1), neuron_key("tiny", 2, 5)
    # the planted writer is B's best input, by virtual weight and by cosine, and A's best output
    inputs = await store.run("MATCH (a:Neuron)-[e:COMPOSES {kind: 'virtual'}]->(:Neuron {key: $b}) "
                             "RETURN a.key AS a, e.weight AS w, e.rank AS r ORDER BY w DESC LIMIT 1", {"b": kb})
    assert inputs == [{"a": ka, "w": pytest.approx(9.0, rel=1e-4), "r": 0}]
    for kind in ("in_out", "out_in"):
        rows = await store.run("MATCH (a:Neuron)-[e:COMPOSES {kind: $kind}]->(b:Neuron {key: $b}) "
                               "RETURN a.key AS a, e.weight AS w ORDER BY w DESC LIMIT 1", {"kind": kind, "b": kb})
        assert rows == [{"a": ka, "w": pytest.approx(1.0, abs=1e-5)}], kind

    # every written edge has a weight and rank; ranks lie in [0, k)
    stats = await store.run("MATCH ()-[e:COMPOSES]->() RETURN e.kind AS kind, count(e) AS n, "
                            "min(e.rank) AS lo, max(e.rank) AS hi ORDER BY kind")
    assert {r["kind"] for r in stats} == {"in_in", "in_out", "out_in", "out_out", "virtual", "gate_virtual"}
    assert all(r["lo"] == 0 and r["hi"] <= 2 for r in stats)
    # virtual edges only point to later layers
    bad = await store.run("MATCH (a:Neuron)-[e:COMPOSES]->(b:Neuron) WHERE e.kind IN ['virtual', 'gate_virtual'] "
                          "AND a.layer >= b.layer RETURN count(e) AS n")
    assert bad == [{"n": 0}]

    # heads: K/Q/V out of earlier neurons, O into neurons of the same or later layer
    heads = await store.run("MATCH (n:Neuron)-[e:HEAD_COMPOSES]->(h:Head) RETURN e.kind AS k, n.layer AS nl, "
                            "h.layer AS hl")
    assert heads and all(r["k"] in "KQV" and r["nl"] < r["hl"] for r in heads)
    o = await store.run("MATCH (h:Head)-[e:HEAD_COMPOSES]->(n:Neuron) RETURN e.kind AS k, n.layer AS nl, h.layer AS hl")
    assert o and all(r["k"] == "O" and r["hl"] <= r["nl"] for r in o)
    assert (await store.run("MATCH (h:Head {key: $k}) RETURN h.head AS head", {"k": head_key("tiny", 1, 3)})) == [{"head": 3}]

    # tokens: the strongest output token of A is W_out·diag(lnf)·W_U's argmax
    logits = w.W_out[0, 1] @ (w.W_U * w.lnf[:, None])
    best = int(torch.argmax(logits))
    toks = await store.run("MATCH (:Neuron {key: $a})-[e:TOKEN_EFFECT {kind: 'output'}]->(t:Token) "
                           "RETURN t.key AS t, e.weight AS w ORDER BY w DESC LIMIT 1", {"a": ka})
    assert toks == [{"t": token_key("tiny", best), "w": pytest.approx(float(logits[best]), rel=1e-4)}]
    neg = await store.run("MATCH (:Neuron {key: $a})-[e:TOKEN_EFFECT {kind: 'input'}]->() WHERE e.weight < 0 "
                          "RETURN count(e) AS n", {"a": ka})
    assert neg == [{"n": 4}]  # the bottom-4 input tokens

    # correlation: the planted pair, both ways
    for x, y in ((neuron_key("tiny", 0, 3), neuron_key("tiny", 2, 4)), (neuron_key("tiny", 2, 4), neuron_key("tiny", 0, 3))):
        corr = await store.run("MATCH (:Neuron {key: $x})-[e:CORRELATES]->(b:Neuron) "
                               "RETURN b.key AS b, e.weight AS w ORDER BY w DESC LIMIT 1", {"x": x})
        assert corr[0]["b"] == y and corr[0]["w"] > 0.9

    # summaries on the neuron: how unusual an edge is
    props = (await store.run("MATCH (n:Neuron {key: $b}) RETURN properties(n) AS p", {"b": kb}))[0]["p"]
    assert len(props["comp_in_out_hist"]) == 100 and sum(props["comp_in_out_hist"]) == N
    assert props["comp_in_out_range"] == [-1.0, 1.0]
    assert props["comp_virtual_up_std"] > 0 and "comp_virtual_down_mean" not in props  # last layer: no later neuron
    assert sum(props["corr_hist"]) == N - 1 and props["corr_n_tokens"] == 800
    model = await store.run("MATCH (m:Model {key: 'tiny'}) RETURN m.connectivity AS c")
    assert model == [{"c": ["composition", "correlation", "heads", "tokens"]}]


async def test_rebuild_is_idempotent_and_resume_skips_done(store):
    w, _, _ = planted()
    m = stand_in()
    await build_connectivity(store, m, weights=w, kinds=("composition", "tokens"), k=2, k_tokens=2, progress=False)
    snap = lambda: store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, e.kind AS k, e.weight AS w, "  # noqa: E731
                             "e.rank AS r, b.key AS b ORDER BY a, t, k, b")
    first = await snap()
    again = await build_connectivity(store, m, weights=w, kinds=("composition", "tokens"), k=2, k_tokens=2,
                                     progress=False)
    assert await snap() == first and again["composition"] > 0
    # resume: finished kinds are skipped (nothing computed, nothing written)
    resumed = await build_connectivity(store, m, weights=w, kinds=("composition", "tokens", "heads"), k=2,
                                       k_heads=1, resume=True, progress=False)
    assert "composition" not in resumed and "tokens" not in resumed and resumed["heads"] > 0


async def test_existing_nodes_keep_their_properties(store):
    m = stand_in("kept")
    await store.write("upsert_models", [ModelInfo("kept", L, D, dataset="kjv", n_tokens=123).row()])
    await store.write("upsert_layers", [{"key": f"kept/L{l}", "model": "kept", "layer": l, "n_neurons": D}
                                        for l in range(L)])
    await store.write("upsert_neurons", [{"key": neuron_key("kept", 1, 2), "model": "kept", "layer": 1,
                                          "index": 2, "layer_key": "kept/L1", "props": {"mean": 0.5}}])
    w, _, _ = planted()
    await build_connectivity(store, m, weights=w, kinds=("tokens",), k_tokens=1, progress=False)
    rows = await store.run("MATCH (m:Model {key: 'kept'}) RETURN m.dataset AS d, m.n_tokens AS t")
    assert rows == [{"d": "kjv", "t": 123}]
    assert (await store.run("MATCH (n:Neuron {key: 'kept/1/2'}) RETURN n.mean AS m")) == [{"m": 0.5}]
    assert (await store.run("MATCH (n:Neuron {model: 'kept'}) RETURN count(n) AS n")) == [{"n": N}]


async def test_unknown_kind_is_refused_before_writing(store):
    with pytest.raises(ValueError, match="unknown connectivity kinds"):
        await build_connectivity(store, stand_in(), weights=planted()[0], kinds=("composition", "telepathy"))
    assert (await store.run("MATCH (n) RETURN count(n) AS n")) == [{"n": 0}]


# --- through a real TransformerBridge (loaders.model.tiny_model) ---------------------------
@pytest.fixture(scope="module")
def tiny():
    from loaders.model import tiny_model
    m = tiny_model(seed=4, n_layers=2, d_model=32, d_mlp=16, n_heads=4)
    with torch.no_grad():  # norm scales away from 1, so folding them in is tested
        g = torch.Generator().manual_seed(0)
        for blk in m.bridge.blocks:
            for ln in (blk.ln1, blk.ln2):
                ln.weight.copy_(0.5 + torch.rand(ln.weight.shape, generator=g))
        m.bridge.ln_final.weight.copy_(0.5 + torch.rand(m.bridge.ln_final.weight.shape, generator=g))
    return m


def test_weights_from_bridge_are_the_models_parameters(tiny):
    from loaders.weights import model_weights
    w = model_weights(tiny)
    hf = tiny.bridge.original_model
    layer = hf.model.layers[1]
    assert torch.equal(w.W_in[1], layer.mlp.up_proj.weight.T)
    assert torch.equal(w.W_gate[1], layer.mlp.gate_proj.weight.T)
    assert torch.equal(w.W_out[1], layer.mlp.down_proj.weight.T)
    assert torch.equal(w.ln2[1], layer.post_attention_layernorm.weight)
    assert torch.equal(w.ln1[1], layer.input_layernorm.weight)
    assert torch.equal(w.lnf, hf.model.norm.weight)
    assert torch.equal(w.W_E, hf.model.embed_tokens.weight)
    dh = w.d_head
    assert torch.equal(w.W_Q[1, 2], layer.self_attn.q_proj.weight.T[:, 2 * dh:3 * dh])
    assert torch.equal(w.W_O[1, 2], layer.self_attn.o_proj.weight.T[2 * dh:3 * dh])
    # the virtual weight is what A's output adds to B's up-projection through ln2's scale
    a_out = w.W_out[0, 3]
    expect = ((a_out * layer.post_attention_layernorm.weight) @ layer.mlp.up_proj.weight.T[:, 5]).detach()
    from loaders.composition import neuron_composition
    lists = neuron_composition(w, k=w.d_mlp, lists=["virtual_down"], progress=False)
    got = dict(lists["virtual_down"].top.rows(3))[1 * w.d_mlp + 5]
    assert got == pytest.approx(float(expect), rel=1e-4)


def test_gqa_bridge_repeats_key_value_heads():
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformer_lens.model_bridge import TransformerBridge
    from loaders.model import smollm2_tokenizer
    from loaders.weights import from_bridge
    import tempfile
    tok = smollm2_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=24, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        cfg.save_pretrained(d)
        bridge = TransformerBridge.boot_transformers(d, hf_model=hf, tokenizer=tok)
    w = from_bridge(bridge)
    k_proj = hf.model.layers[0].self_attn.k_proj.weight.T  # [d_model, 2 * d_head]
    assert w.W_K.shape == (2, 6, 24, 4)
    for h in range(6):  # query heads 0-2 share kv head 0, 3-5 kv head 1 (Llama repeat_kv)
        assert torch.equal(w.W_K[0, h], k_proj[:, (h // 3) * 4:(h // 3 + 1) * 4])


async def test_build_from_a_bridge_with_contexts(store, tiny):
    contexts = torch.randint(3, 2000, (6, 12), generator=torch.Generator().manual_seed(1))
    contexts[:, 0] = tiny.bos_token_id
    rep = await build_connectivity(store, tiny, contexts, k=3, k_heads=2, k_tokens=3, batch_size=3,
                                   progress=False)
    assert rep["n_tokens"] == 6 * 11  # BOS positions ignored
    n = tiny.info.n_layers * tiny.info.d_mlp
    counts = await store.run("MATCH (:Neuron {model: $m})-[e]->() RETURN type(e) AS t, count(e) AS n ORDER BY t",
                             {"m": tiny.name})
    assert {r["t"] for r in counts} == {"COMPOSES", "CORRELATES", "HEAD_COMPOSES", "TOKEN_EFFECT"}
    tokens = await store.run("MATCH (n:Neuron {model: $m})-[e:TOKEN_EFFECT]->(t:Token) "
                             "RETURN t.id AS id, t.text AS text LIMIT 5", {"m": tiny.name})
    assert all(r["text"] == tiny.tokenizer.decode([r["id"]]) for r in tokens)
    corr = await store.run("MATCH (a:Neuron {model: $m})-[e:CORRELATES]->(b) RETURN count(e) AS n", {"m": tiny.name})
    assert 0 < corr[0]["n"] <= n * 6


# --- rows: one per edge, the better rank, built lazily ------------------------------------
def _reference_rows(entries) -> dict[tuple, dict]:
    """The dict-per-row construction the lazy rows replace: (key, row) in the given order,
    the smaller rank kept, the first on a tie."""
    rows: dict[tuple, dict] = {}
    for key, row in entries:
        if key not in rows or row["rank"] < rows[key]["rank"]:
            rows[key] = row
    return rows


def _slots(top):
    for o in range(top.indices.shape[0]):
        for r in range(top.indices.shape[1]):
            if top.indices[o, r] >= 0:
                yield o, int(top.indices[o, r]), float(top.values[o, r]), r


def test_lazy_rows_keep_the_best_rank_of_each_edge(monkeypatch):
    import loaders.connectivity as conn
    from loaders.composition import head_composition, neuron_composition, token_effects
    from loaders.connectivity import composition_props, composition_rows, head_rows, token_rows

    monkeypatch.setattr(conn, "ROW_CHUNK", 7)  # many chunks (props: one neuron each)

    w, _, _ = planted()
    nk = lambda g: neuron_key("tiny", g // D, g % D)  # noqa: E731
    lists = neuron_composition(w, k=D, progress=False)  # k near N: top and bottom lists overlap
    ref = _reference_rows(
        ((src, dst, lst.kind), {"src": nk(src), "dst": nk(dst), "kind": lst.kind, "weight": v, "rank": r})
        for name, lst in lists.items() for top in (lst.top, lst.bottom)
        for o, p, v, r in _slots(top)
        for src, dst in [((p, o) if name == "in_out" or name.endswith("_up") else (o, p))])
    got = composition_rows("tiny", D, lists)
    assert len(got) == len(ref)
    key = lambda r: (r["src"], r["dst"], r["kind"])  # noqa: E731
    assert sorted(got, key=key) == sorted(ref.values(), key=key)
    props = {r["key"]: r["props"] for r in composition_props("tiny", D, lists)}
    for g in range(N):
        for name, lst in lists.items():
            s = lst.summary
            p = props[nk(g)]
            if s.n[g] == 0:
                assert f"comp_{name}_mean" not in p
            else:
                assert p[f"comp_{name}_mean"] == float(s.mean[g]) and p[f"comp_{name}_hist"] == s.hist[g].tolist()

    te = token_effects(w, k=V // 2 + 2, progress=False)  # top and bottom tokens overlap
    ref = _reference_rows(((o, t, kind), {"neuron": nk(o), "token": token_key("tiny", t), "kind": kind,
                                          "weight": v, "rank": r, "count": None})
                          for kind in ("input", "output") for side in ("top", "bottom")
                          for o, t, v, r in _slots(getattr(te, f"{kind}_{side}")))
    rows, ids = token_rows("tiny", D, te)
    key = lambda r: (r["neuron"], r["token"], r["kind"])  # noqa: E731
    assert sorted(rows, key=key) == sorted(ref.values(), key=key) and len(rows) == len(ref)
    assert ids == {t for _, t, _ in ref}

    hc = head_composition(w, k=3, progress=False)
    hk = lambda j: head_key("tiny", j // H, j % H)  # noqa: E731
    ref = _reference_rows(((n, h, kind), {"neuron": nk(n), "head": hk(h), "kind": kind, "weight": v, "rank": r})
                          for kind in hc.scores for top, owns in ((hc.by_neuron[kind], True), (hc.by_head[kind], False))
                          for o, p, v, r in _slots(top) for n, h in [((o, p) if owns else (p, o))])
    to_head, to_neuron = head_rows("tiny", D, H, hc)
    key = lambda r: (r["neuron"], r["head"], r["kind"])  # noqa: E731
    assert sorted(list(to_head) + list(to_neuron), key=key) == sorted(ref.values(), key=key)
    assert {r["kind"] for r in to_neuron} == {"O"} and len(to_head) + len(to_neuron) == len(ref)
