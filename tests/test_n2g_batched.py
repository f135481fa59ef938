"""Batched N2G (many neurons of a layer, shared forward passes) gives the per-neuron path's
pattern graphs: exactly on hand-made neurons and the tiny model, and on a few SmolLM2 neurons."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from loaders.n2g import (Example, N2GConfig, build_n2g, combined_substitutes, embedding_neighbours, lm_substitutes,
                         run_layer, run_neuron, token_substitutes)
from loaders.n2g.batched import LayerStats, _cover
from neurograph.domain import ModelInfo, layer_key, neuron_key


def graph(result) -> dict:
    """A fitted pattern graph with stored activations rounded (batch shapes change float32
    rounding in the last bits, nothing else)."""
    d = result.model.to_dict()
    for n in d["graph"]["nodes"]:
        if n["activation"] is not None:
            n["activation"] = round(n["activation"], 4)
    return d


def test_cover_runs_each_prefix_inside_a_longer_sequence():
    # (1, 2) runs inside (1, 2, 3); the others run themselves
    assert _cover([(1, 2), (1, 2, 3), (4,), (1, 3)]) == [(1, 2), (1, 3), (2, 1), (3, 2)]


def _toy_layer(n: int = 6):
    """A layer of n hand-made neurons: neuron i fires on token 2 + i when token 1 + (i % 2) is two
    back, weakly elsewhere; the layer function counts the sequences it runs."""
    calls = {"seqs": 0}

    def layer(seqs):
        calls["seqs"] += len(seqs)
        T = max(len(s) for s in seqs)
        out = np.zeros((len(seqs), T, n))
        for b, s in enumerate(seqs):
            for i in range(n):
                for p, t in enumerate(s):
                    if t == 2 + i:
                        out[b, p, i] = 1.0 if p >= 2 and s[p - 2] == 1 + (i % 2) else 0.1
        return out

    return layer, calls


def _as_model_fn(layer):
    """A layer function as a model-wide one (``packed_layers``): each slot of a packed token tree
    reads the layer on its own path from the root, as a tree mask lets a model see it."""
    def packed_layers(rows, want):
        n = max(len(r[0]) for r in rows)
        out = {l: np.zeros((len(rows), n, len(c))) for l, c in want.items()}
        for b, (toks, parents, _depth) in enumerate(rows):
            for a in range(len(toks)):
                path, q = [], a
                while q >= 0:
                    path.append(toks[q])
                    q = parents[q]
                acts = layer([path[::-1]])[0, -1]
                for l, c in want.items():
                    out[l][b, a] = acts[c]
        return out

    fn = lambda seqs: layer(seqs)  # noqa: E731
    fn.packed_layers = packed_layers
    return fn


def _crashing(layer, after: int = 3):
    """:func:`_as_model_fn` that raises from its ``after``-th forward call on (a killed process), until
    ``calls["n"]`` is set back; returns (function, calls)."""
    model_fn, calls = _as_model_fn(layer), {"n": 0}

    def packed_layers(rows, want):
        calls["n"] += 1
        if calls["n"] > after:
            raise RuntimeError("killed")
        return model_fn.packed_layers(rows, want)

    fn = lambda seqs: None  # noqa: E731
    fn.packed_layers = packed_layers
    return fn, calls


def _toy_examples(layer, n: int, seed: int = 0) -> dict[int, list[Example]]:
    """8 windows, each with every neuron's pattern once (in a random order of slots): all
    neurons share their top windows, as neurons of a real layer often do."""
    rng = random.Random(seed)
    windows = []
    for _ in range(8):
        toks = [rng.randrange(20, 40) for _ in range(3 * n + 2)]
        for slot, i in enumerate(rng.sample(range(n), n)):
            p = 3 + 3 * slot
            toks[p - 2], toks[p] = 1 + (i % 2), 2 + i
        windows.append(toks)
    acts = layer(windows)
    return {i: [Example(w, acts[b, :, i].tolist()) for b, w in enumerate(windows)] for i in range(n)}


def test_batched_equals_per_neuron_on_hand_made_neurons():
    layer, calls = _toy_layer()
    examples = _toy_examples(layer, 6)
    subs = token_substitutes({t: [t + 1, t + 2] for t in range(60)}.get)
    cfg = N2GConfig(n_substitutes=2)
    calls["seqs"] = 0
    old = {i: run_neuron(lambda s, i=i: layer(s)[:, :, i], exs, pad_token=0, substitutes=subs, config=cfg)
           for i, exs in examples.items()}
    per_neuron = calls["seqs"]
    calls["seqs"] = 0
    stats = LayerStats()
    new = run_layer(layer, examples, pad_token=0, substitutes=subs, config=cfg, stats=stats)
    for i in examples:
        assert new[i].model.to_dict() == old[i].model.to_dict()
        assert new[i].scores == old[i].scores and new[i].baseline == old[i].baseline
    assert stats.neurons == 6 and stats.seqs_run < stats.seqs_asked == per_neuron
    assert calls["seqs"] == stats.seqs_run


def test_a_neuron_with_nothing_to_fit_fails_alone():
    layer, _ = _toy_layer(3)
    examples = _toy_examples(layer, 3)
    examples[1] = [Example([30, 31], [0.0, 0.0])]  # never fires
    got = run_layer(layer, examples, pad_token=0)
    assert isinstance(got[1], ValueError) and got[0].model.nodes and got[2].model.nodes


@pytest.fixture(scope="module")
def tiny():
    from loaders.model import tiny_model

    return tiny_model(seed=3, n_layers=2, d_model=64, d_mlp=128)


def _top_examples(layer_fn, n_ctx: int, length: int, neurons: list[int], top: int, seed: int = 0):
    """Each neuron's top windows by max activation among random token windows."""
    rng = np.random.default_rng(seed)
    windows = rng.integers(200, 5000, (n_ctx, length)).tolist()
    acts = np.concatenate([np.asarray(layer_fn(windows[s:s + 32])) for s in range(0, n_ctx, 32)])
    out = {}
    for i in neurons:
        order = np.argsort(-acts[:, :, i].max(axis=1), kind="stable")[:top]
        out[i] = [Example(windows[w], acts[w, :, i].tolist()) for w in order]
    return out


def test_batched_equals_per_neuron_on_the_tiny_model(tiny):
    import torch

    from loaders.activations import neuron_activation_fn
    from loaders.model import LoadedModel  # noqa: F401  (the fixture's type)

    layer = 1
    layer_fn = neuron_activation_fn(tiny, layer)
    neurons = [3, 17, 40, 77, 101]
    examples = _top_examples(layer_fn, 96, 16, neurons, 10)
    W_E = tiny.bridge.W_E.detach()
    near = embedding_neighbours(W_E, k=4)

    def logits(seqs):
        with torch.inference_mode():
            return tiny.bridge(torch.tensor(seqs, dtype=torch.long), return_type="logits")

    subs = combined_substitutes(lm_substitutes(logits, 4, fallback=near, embeddings=W_E, pool=20),
                                token_substitutes(near))
    cfg = N2GConfig(n_substitutes=4, pivot_substitutes=8)
    old = {i: run_neuron(neuron_activation_fn(tiny, layer, i), exs, pad_token=220, substitutes=subs, config=cfg)
           for i, exs in examples.items()}
    new = run_layer(layer_fn, examples, pad_token=220, substitutes=subs, config=cfg)
    for i in neurons:
        assert graph(new[i]) == graph(old[i]), i
        assert new[i].scores == old[i].scores, i
    assert sum(len(r.model.nodes) for r in new.values()) > len(neurons)  # not trivially empty


async def test_build_batched_stores_what_the_per_neuron_build_stores(store, tmp_path):
    layer, _ = _toy_layer(4)
    examples = {(0, i): exs for i, exs in _toy_examples(layer, 4).items()}
    info = ModelInfo("toyb", 1, 4, d_model=4, n_heads=1, d_vocab=64, act_fn="relu")
    await store.write("upsert_models", [info.row()])
    await store.write("upsert_layers", [{"key": layer_key("toyb", 0), "model": "toyb", "layer": 0, "n_neurons": 4}])
    await store.write("upsert_neurons", [{"key": neuron_key("toyb", 0, i), "model": "toyb", "layer": 0, "index": i,
                                          "layer_key": layer_key("toyb", 0), "props": {}} for i in range(4)])
    decode = lambda t: f" t{t}"  # noqa: E731

    async def snapshot():
        rows = await store.run("MATCH (n:Neuron {model: 'toyb'}) RETURN n.index AS i, n.n2g_graph AS g, "
                               "n.n2g_firing_f1 AS f ORDER BY i")
        edges = await store.run("MATCH (:Neuron {model: 'toyb'})-[:HAS_PATTERN]->(p)-[m:MATCHES]->(t:Token) "
                                "RETURN p.key AS p, m.role AS r, t.key AS t ORDER BY p, t")
        return rows, edges

    s1 = await build_n2g(store, "toyb", lambda l, i: (lambda s: layer(s)[:, :, i]), pad_token=0, examples=examples,
                         decode=decode, progress=False)
    before = await snapshot()
    s2 = await build_n2g(store, "toyb", layer_fn=lambda l: layer, pad_token=0, examples=examples, decode=decode,
                         progress=False, force=True, group=3, order=[(0, 3), (0, 1)])
    assert s1["done"] == s2["done"] == 4 and s1["similar"] == s2["similar"]
    assert await snapshot() == before
    s3 = await build_n2g(store, "toyb", model_fn=_as_model_fn(layer), pad_token=0, examples=examples, decode=decode,
                         progress=False, force=True, group=3)
    assert s3["done"] == 4 and s3["similar"] == s1["similar"]
    assert await snapshot() == before
    with pytest.raises(ValueError):
        await build_n2g(store, "toyb", pad_token=0, examples=examples, progress=False)
    # The sweep (all neurons at once, blocks of contexts) stores the same; a crash in the middle
    # keeps the blocks done, and the next run goes on from them with the neurons it started with.
    folder = tmp_path / "sweep"
    broken, calls = _crashing(layer)
    with pytest.raises(RuntimeError, match="killed"):
        await build_n2g(store, "toyb", model_fn=broken, pad_token=0, examples=examples, decode=decode,
                        progress=False, force=True, sweep=folder, contexts_per_block=1)
    kept = sorted(p.name for p in folder.iterdir())
    assert "plan.json" in kept and any(n.startswith("block-") for n in kept)
    calls["n"] = -10**6  # works from now on; forced again (without, the neurons stored are skipped)
    s4 = await build_n2g(store, "toyb", model_fn=broken, pad_token=0, examples=examples, decode=decode,
                         progress=False, force=True, sweep=folder, contexts_per_block=1)
    assert s4["done"] == 4 and s4["similar"] == s1["similar"]
    assert await snapshot() == before
    assert list(folder.iterdir()) == []  # a finished sweep leaves nothing behind


@pytest.mark.model
def test_batched_equals_per_neuron_on_smollm2_neurons():
    import torch

    from loaders.activations import neuron_activation_fn
    from loaders.model import load_model

    m = load_model("smollm2-135m")
    layer = 3
    layer_fn = neuron_activation_fn(m, layer)
    text = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
            "and darkness was upon the face of the deep. def main(args):\n    return len(args) + 1\n")
    ids = m.to_tokens(text * 3)
    windows = [ids[s:s + 24] for s in range(0, len(ids) - 24, 6)]
    acts = np.asarray(layer_fn(windows))
    neurons = [int(i) for i in np.argsort(-acts.max(axis=(0, 1)))[:3]]
    examples = {}
    for i in neurons:
        order = np.argsort(-acts[:, :, i].max(axis=1), kind="stable")[:8]
        examples[i] = [Example(windows[w], acts[w, :, i].tolist()) for w in order]
    near = embedding_neighbours(m.bridge.W_E.detach(), k=3)
    subs = token_substitutes(near)
    cfg = N2GConfig(n_substitutes=3)
    space = m.to_tokens(" ")[0]
    old = {i: run_neuron(neuron_activation_fn(m, layer, i), exs, pad_token=space, substitutes=subs, config=cfg)
           for i, exs in examples.items()}
    new = run_layer(layer_fn, examples, pad_token=space, substitutes=subs, config=cfg)
    for i in neurons:
        assert graph(new[i]) == graph(old[i]), i


async def test_model_shows_n2g_coverage(store, settings, tmp_path):
    import httpx

    from neurograph.api import create_app

    layer, _ = _toy_layer(4)
    examples = {(0, i): exs for i, exs in _toy_examples(layer, 4).items()}
    info = ModelInfo("toyc", 1, 4, d_model=4, n_heads=1, d_vocab=64, act_fn="relu")
    await store.write("upsert_models", [info.row()])
    await store.write("upsert_layers", [{"key": layer_key("toyc", 0), "model": "toyc", "layer": 0, "n_neurons": 4}])
    await store.write("upsert_neurons", [{"key": neuron_key("toyc", 0, i), "model": "toyc", "layer": 0, "index": i,
                                          "layer_key": layer_key("toyc", 0), "props": {}} for i in range(4)])
    query = '{ model(name: "toyc") { n2gCoverage { done total sweepBlocksDone sweepBlocks } } }'

    async def coverage():
        app = create_app(settings, store)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            body = (await c.post("/graphql", json={"query": query})).json()
        assert not body.get("errors"), body
        return body["data"]["model"]["n2gCoverage"]

    none = {"sweepBlocksDone": 0, "sweepBlocks": 0}
    assert await coverage() == {"done": 0, "total": 4, **none}
    await build_n2g(store, "toyc", layer_fn=lambda l: layer, pad_token=0, examples=examples, neurons=[(0, 1), (0, 2)],
                    progress=False)
    assert await coverage() == {"done": 2, "total": 4, **none}
    # A sweep stores most neurons near its end: its blocks show while it is under way (here it
    # crashed after some), and no more once it is done.
    broken, calls = _crashing(layer)
    kw = dict(pad_token=0, examples=examples, progress=False, sweep=tmp_path / "sweep", contexts_per_block=1)
    with pytest.raises(RuntimeError, match="killed"):
        await build_n2g(store, "toyc", model_fn=broken, **kw)
    got = await coverage()
    assert 1 <= got["sweepBlocksDone"] < got["sweepBlocks"] and got["done"] == 2
    calls["n"] = -10**6
    await build_n2g(store, "toyc", model_fn=broken, **kw)
    assert await coverage() == {"done": 4, "total": 4, **none}


def test_stages_can_run_on_another_layer_function():
    """``layer_fn.by_stage``: the driver sends each stage's sequences to its own function (the
    pipeline's --fast-dtype runs prune, base and variants on a bfloat16 copy)."""
    layer, _ = _toy_layer(3)
    examples = _toy_examples(layer, 3)
    subs = token_substitutes({t: [t + 1] for t in range(60)}.get)
    seen: dict[str, int] = {}

    def tagged(stage):
        def fn(seqs):
            seen[stage] = seen.get(stage, 0) + len(seqs)
            return layer(seqs)
        return fn

    main = tagged("main")
    main.by_stage = {s: tagged(s) for s in ("prune", "base", "variants")}
    got = run_layer(main, examples, pad_token=0, substitutes=subs, config=N2GConfig(n_substitutes=1))
    ref = run_layer(layer, examples, pad_token=0, substitutes=subs, config=N2GConfig(n_substitutes=1))
    assert all(got[i].model.to_dict() == ref[i].model.to_dict() for i in examples)
    assert set(seen) == {"main", "prune", "variants"} or set(seen) == {"main", "prune", "base", "variants"}
    assert seen["main"] > 0  # importance ran on the main function


def test_model_wide_equals_layer_by_layer_on_the_tiny_model(tiny):
    """run_model (every layer's neurons from one forward pass) gives run_layer's graphs, and
    shares sequences across layers: fewer tokens than the layers run one by one."""
    from loaders.activations import model_activation_fn, neuron_activation_fn
    from loaders.n2g import run_model

    cfg = N2GConfig(n_substitutes=3, pivot_substitutes=6)
    near = embedding_neighbours(tiny.bridge.W_E.detach(), k=6)
    subs = token_substitutes(near)
    examples, per_layer, layer_stats = {}, {}, LayerStats()
    for layer in (0, 1):
        fn = neuron_activation_fn(tiny, layer)
        exs = _top_examples(fn, 32, 12, [5, 60, 100], 6)  # the same windows for both layers
        per_layer.update({(layer, i): r for i, r in
                          run_layer(fn, exs, pad_token=220, substitutes=subs, config=cfg, stats=layer_stats).items()})
        examples.update({(layer, i): e for i, e in exs.items()})
    stats = LayerStats()
    got = run_model(model_activation_fn(tiny), examples, pad_token=220, substitutes=subs, config=cfg, stats=stats)
    assert set(got) == set(examples)
    for key in examples:
        assert graph(got[key]) == graph(per_layer[key]), key
        assert got[key].scores == per_layer[key].scores, key
    assert stats.neurons == 6 and sum(len(r.model.nodes) for r in got.values()) > 6
    assert stats.seqs_run < layer_stats.seqs_run  # the layers' shared sequences ran once


def test_model_wide_needs_a_model_function():
    layer, _ = _toy_layer(2)
    from loaders.n2g import run_model

    with pytest.raises(ValueError, match="packed_layers"):
        run_model(layer, {(0, 0): _toy_examples(layer, 2)[0]}, pad_token=0)


@pytest.mark.parametrize("gated", [True, False])
def test_packed_pass_on_the_plain_model_equals_the_bridge(gated):
    """_capture_packed runs the Hugging Face model rebuilt without the bridge's wrappers (its
    weights shared): in float32 the same activations as under the bridge (bit for bit on the
    Llama-style model, whose attention is the same eager code), in bfloat16 within its rounding
    (fused attention there)."""
    import torch

    from loaders.activations import _capture_packed, _plain_view
    from loaders.model import tiny_model
    from loaders.n2g.batched import pack, packed_inputs

    model = tiny_model(seed=5, n_layers=2, d_model=64, d_mlp=128, gated=gated)
    rows, _ = pack([(5, 6, 7, 8, 9), (5, 6, 220, 8, 9), (5, 220, 7, 8, 9), (11, 12, 13), (11, 220, 13, 14, 15)],
                   max_row=8)
    assert len(rows) == 3  # token trees of 8, 8 and 5 slots: padding too
    inputs = packed_inputs(rows, pad=0)
    want = {0: [1, 5, 9], 1: list(range(128))}
    for dtype, tol in (("float32", 0.0 if gated else 1e-6), ("bfloat16", 2e-2)):
        if dtype != "float32":
            model.place(dtype=dtype)
        view = _plain_view(model)
        assert view is not None and next(view[0].parameters()).dtype == getattr(torch, dtype)
        old = _capture_packed(model, *inputs, want, plain=False)
        new = _capture_packed(model, *inputs, want)
        for layer, cols in want.items():
            assert new[layer].shape == old[layer].shape == (3, 8, len(cols))
            assert new[layer].dtype == torch.float32
            scale = float(old[layer].abs().max())
            assert scale > 0
            assert float((new[layer] - old[layer]).abs().max()) <= tol * scale, (dtype, layer)
        assert torch.equal(_capture_packed(model, *inputs, 1), new[1])  # one layer, every column


# ----------------------------------------------------------------------------------------
# the sweep: every neuron at once, a block of contexts at a time
# ----------------------------------------------------------------------------------------
def test_sweep_equals_per_neuron_on_hand_made_neurons(tmp_path):
    """Fitting each neuron's examples in parts, block by block of contexts, gives the trie of one
    fit (same nodes in the same order, same scores), and neurons sharing contexts share passes."""
    from loaders.n2g.sweep import sweep_all

    layer, calls = _toy_layer()
    examples = {(0, i): exs for i, exs in _toy_examples(layer, 6).items()}
    subs = token_substitutes({t: [t + 1, t + 2] for t in range(60)}.get)
    cfg = N2GConfig(n_substitutes=2)
    old = {k: run_neuron(lambda s, i=k[1]: layer(s)[:, :, i], exs, pad_token=0, substitutes=subs, config=cfg)
           for k, exs in examples.items()}
    for per_block in (1, 3):
        calls["seqs"] = 0
        stats = LayerStats()
        new = sweep_all(_as_model_fn(layer), examples, pad_token=0, substitutes=subs, config=cfg,
                        contexts_per_block=per_block, stats=stats)
        assert set(new) == set(examples)
        for k in examples:
            assert new[k].model.to_dict() == old[k].model.to_dict(), (per_block, k)
            assert new[k].scores == old[k].scores and new[k].baseline == old[k].baseline
            assert new[k].trace.lines == old[k].trace.lines
        assert stats.neurons == 6 and stats.tokens_run < stats.tokens_asked


def test_sweep_orders_its_contexts_to_finish_neurons_early():
    """A neuron is stored when its last context is done: the plan's blocks follow
    finishing_order, which finishes more neurons after each block than the contexts' order of
    first use (synthetic: neurons of 5 contexts each, some contexts popular, as on the demo)."""
    import random

    from loaders.n2g.sweep import finishing_order, plan_sweep

    rng = random.Random(0)
    n, popular = 64, list(range(8))
    sets = [sorted(set(rng.sample(popular, 2) + rng.sample(range(n), 3))) for _ in range(400)]
    first = list(dict.fromkeys(c for cs in sets for c in cs))
    first += [c for c in range(n) if c not in first]

    def finished(order):  # neurons finished on average over the work (a block's work: its items)
        at = {c: k // 4 for k, c in enumerate(order)}
        last = [max(at[c] for c in cs) for cs in sets]
        work = [sum(at[c] == b for cs in sets for c in cs) for b in range(n // 4)]
        return sum(sum(x <= b for x in last) * w for b, w in enumerate(work)) / sum(work)

    greedy = finishing_order(sets, n)
    assert sorted(greedy) == list(range(n))
    assert finished(greedy) > 1.2 * finished(first)
    # The plan's blocks hold the contexts in that order, each neuron's last block where it ends.
    ctx = [[100 + c, 200 + c] for c in range(n)]
    examples = {(0, i): [Example(ctx[c], [0.0, 1.0]) for c in cs] for i, cs in enumerate(sets)}
    plan = plan_sweep(examples, N2GConfig(train_fraction=1.0), 4)
    ids = list(dict.fromkeys(c for cs in sets for c in cs))  # plan_sweep's ids: first use
    expect = [ids[c] for c in finishing_order([sorted({ids.index(c) for c in cs}) for cs in sets], len(ids))]
    blocks = [sorted({tuple(e.tokens) for items in part.values() for _, e in items}) for part in plan.parts]
    assert blocks == [sorted(tuple(ctx[c]) for c in expect[b:b + 4]) for b in range(0, len(expect), 4)]
    assert [plan.last[(0, i)] for i in range(len(sets))] == [max(expect.index(c) // 4 for c in cs) for cs in sets]


def test_sweep_resumes_from_its_kept_blocks_and_reports_neurons_with_nothing_to_fit(tmp_path):
    from loaders.n2g.sweep import run_sweep, sweep_all

    layer, calls = _toy_layer(3)
    examples = {(0, i): exs for i, exs in _toy_examples(layer, 3).items()}
    examples[(0, 1)] = [Example([30, 31], [0.0, 0.0])]  # never fires
    fn = _as_model_fn(layer)
    whole = sweep_all(fn, examples, pad_token=0, contexts_per_block=2)
    assert isinstance(whole[(0, 1)], ValueError) and "positive" in str(whole[(0, 1)])
    calls["seqs"] = 0
    sweep = run_sweep(fn, examples, pad_token=0, contexts_per_block=2, checkpoint=tmp_path)
    seen = [next(sweep), next(sweep)]  # the neuron with nothing to fit, then the first block
    assert list(seen[0][2]) == [(0, 1)] and seen[1][0] == 0 and seen[1][1] >= 2
    sweep.close()  # interrupted after one block
    first = calls["seqs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block-00000.pkl", "plan.json"]
    calls["seqs"] = 0
    again = sweep_all(fn, examples, pad_token=0, contexts_per_block=2, checkpoint=tmp_path)
    resumed = calls["seqs"]
    calls["seqs"] = 0
    sweep_all(fn, examples, pad_token=0, contexts_per_block=2)
    assert 0 < resumed < calls["seqs"] and first > 0  # the kept block did not run again
    for k in (0, 0), (0, 2):
        assert again[k].model.to_dict() == whole[k].model.to_dict() and again[k].scores == whole[k].scores
    assert list(tmp_path.iterdir()) == []  # a finished sweep leaves nothing behind
    # Another plan (other settings) does not read an interrupted one's blocks.
    sweep = run_sweep(fn, examples, pad_token=0, contexts_per_block=2, checkpoint=tmp_path)
    next(sweep), next(sweep)
    sweep.close()
    digest = json.loads((tmp_path / "plan.json").read_text())["digest"]
    calls["seqs"] = 0
    other = run_sweep(fn, examples, pad_token=0, contexts_per_block=2, checkpoint=tmp_path,
                      config=N2GConfig(importance_threshold=0.5))
    next(other), next(other)
    assert json.loads((tmp_path / "plan.json").read_text())["digest"] != digest and calls["seqs"] == first
    other.close()


def test_sweep_workers_share_one_sweep(tmp_path):
    """Two workers (threads here, processes in the demo) sweep one plan through one folder: each
    block is fitted once, by whichever claims it first; each worker returns the neurons of its
    layers, together every neuron, as one sweep gives them; a dead worker's claim is taken over."""
    import threading

    from loaders.n2g.sweep import _lock_file, sweep_all

    layer, _ = _toy_layer(4)
    examples = {(l, i): exs for l in (0, 1) for i, exs in _toy_examples(layer, 4, seed=l).items()}
    inner, tokens = _as_model_fn(layer), []

    def packed_layers(rows, want):
        tokens.append(sum(len(r[0]) for r in rows))  # list.append: safe from both threads
        return inner.packed_layers(rows, want)

    fn = lambda seqs: None  # noqa: E731
    fn.packed_layers = packed_layers
    whole = sweep_all(fn, examples, pad_token=0, contexts_per_block=1)
    alone = sum(tokens)
    tokens.clear()
    # a claim left by a process that is gone (pid 2**22 + 1 is above Linux's pid_max)
    (tmp_path / "sweep").mkdir()
    _lock_file(tmp_path / "sweep", 0).write_text(str(2**22 + 1))
    got: dict = {}

    def work(i):
        got[i] = sweep_all(fn, examples, pad_token=0, contexts_per_block=1, checkpoint=tmp_path / "sweep",
                           worker=(i, 2), poll_s=0.01)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(got[0]) == {k for k in examples if k[0] == 0} and set(got[1]) == {k for k in examples if k[0] == 1}
    for k in examples:
        assert got[k[0]][k].model.to_dict() == whole[k].model.to_dict() and got[k[0]][k].scores == whole[k].scores
    assert sum(tokens) == alone  # every block once
    assert list((tmp_path / "sweep").iterdir()) == []
    with pytest.raises(ValueError, match="checkpoint"):
        sweep_all(fn, examples, pad_token=0, worker=(0, 2))


def test_sweep_equals_run_model_on_the_tiny_model(tiny):
    """On a real (tiny) model, across two layers: the sweep's graphs and scores are run_model's,
    and it runs fewer tokens for the same neurons (their examples share contexts)."""
    from loaders.activations import model_activation_fn, neuron_activation_fn
    from loaders.n2g import run_model
    from loaders.n2g.sweep import sweep_all

    cfg = N2GConfig(n_substitutes=3, pivot_substitutes=6)
    subs = token_substitutes(embedding_neighbours(tiny.bridge.W_E.detach(), k=6))
    examples = {}
    for layer in (0, 1):
        exs = _top_examples(neuron_activation_fn(tiny, layer), 32, 12, [5, 60, 100, 7], 6)
        examples.update({(layer, i): e for i, e in exs.items()})
    fn = model_activation_fn(tiny)
    small, sweep = LayerStats(), LayerStats()
    keys = sorted(examples)
    ref = {}
    for s in range(0, len(keys), 2):  # groups of two, as build_n2g's groups of neurons in interest order
        ref.update(run_model(fn, {k: examples[k] for k in keys[s:s + 2]}, pad_token=220, substitutes=subs,
                             config=cfg, stats=small))
    got = sweep_all(fn, examples, pad_token=220, substitutes=subs, config=cfg, contexts_per_block=4, stats=sweep)
    for key in examples:
        assert graph(got[key]) == graph(ref[key]), key
        assert got[key].scores == ref[key].scores, key
    assert sum(len(r.model.nodes) for r in got.values()) > 8
    assert sweep.tokens_run < small.tokens_run
