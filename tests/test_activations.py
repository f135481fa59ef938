"""The activation harvest on a tiny random model, checked against brute force on the same
activations: every statistic, the top-k contexts, per-token stats and resume-after-interrupt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.activations import (
    Harvest,
    harvest,
    histogram_bins,
    histogram_edges,
    iter_mlp_activations,
    neuron_activation_fn,
    tracked_tokens,
)
from loaders.corpus import corpus_contexts
from loaders.model import tiny_model

TOP_K = 5
MIN_COUNT = 3


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def ctx(model):
    return corpus_contexts(model, "default", n_tokens=45 * 32, ctx_len=32)


@pytest.fixture(scope="module")
def acts(model, ctx) -> np.ndarray:
    """All activations [L, N, T, D] in one tensor, from the same iterator the harvest uses."""
    parts = [a for _, _, a in iter_mlp_activations(model, ctx.tokens, batch_size=8)]
    return torch.cat(parts, dim=1).numpy()


@pytest.fixture(scope="module")
def result(model, ctx):
    return harvest(model, ctx.tokens, top_k=TOP_K, batch_size=8, min_token_count=MIN_COUNT, progress=False)


def test_contexts_start_with_bos_and_are_deterministic(model, ctx):
    assert ctx.tokens.shape == (45, 32)
    assert bool((ctx.tokens[:, 0] == model.bos_token_id).all())
    again = corpus_contexts(model, "default", n_tokens=45 * 32, ctx_len=32)
    assert torch.equal(again.tokens, ctx.tokens) and again.sources == ctx.sources
    assert any(s.startswith("kjv:") for s in ctx.sources) and any(s.startswith("python-stdlib:") for s in ctx.sources)


def test_iterator_shapes_and_layer_function(model, ctx, acts):
    L, D = model.info.n_layers, model.info.d_mlp
    first, toks, a = next(iter_mlp_activations(model, ctx.tokens, batch_size=4, start=8))
    assert first == 8 and torch.equal(toks, ctx.tokens[8:12])
    assert a.shape == (L, 4, 32, D) and a.dtype == torch.float32
    np.testing.assert_allclose(a.numpy(), acts[:, 8:12], rtol=1e-5, atol=1e-6)
    # the early-stopping single-layer function agrees; shorter sequences are right-padded
    fn = neuron_activation_fn(model, 1)
    seqs = [ctx.tokens[0].tolist(), ctx.tokens[1, :10].tolist()]
    out = fn(seqs)
    assert out.shape == (2, 32, D)
    np.testing.assert_allclose(out[0], acts[1, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1, :10], acts[1, 1, :10], rtol=1e-5, atol=1e-6)
    assert not out[1, 10:].any()
    # one neuron, in chunks of 3 sequences of mixed lengths: the same numbers
    seqs = [ctx.tokens[i, :8 + i].tolist() for i in range(7)]
    one = neuron_activation_fn(model, 1, 5, max_batch=3)(seqs)
    assert one.shape == (7, 14)
    for i in range(7):
        np.testing.assert_allclose(one[i, :8 + i], acts[1, i, :8 + i, 5], rtol=1e-5, atol=1e-6)
        assert not one[i, 8 + i:].any()
    assert neuron_activation_fn(model, 1, 5)([]).shape == (0, 0)
    with pytest.raises(ValueError, match="layers 0..1"):
        neuron_activation_fn(model, 2)
    with pytest.raises(ValueError, match=f"neurons 0..{D - 1}"):
        neuron_activation_fn(model, 0, D)


def test_moments_extremes_and_fraction_active(result, acts):
    x = acts[:, :, 1:].astype(np.float64)  # position 0 (BOS) is left out of the statistics
    L, N, T, D = x.shape
    flat = x.transpose(0, 3, 1, 2).reshape(L, D, N * T)
    assert result.n_tokens == N * T and result.n_contexts == N
    mean = flat.mean(-1)
    c = flat - mean[..., None]
    var = (c ** 2).mean(-1)
    np.testing.assert_allclose(result.mean, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.var, var, rtol=1e-7, atol=1e-15)
    np.testing.assert_allclose(result.skew, (c ** 3).mean(-1) / var ** 1.5, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.kurt, (c ** 4).mean(-1) / var ** 2, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(result.frac_active, (flat > 0).mean(-1))
    np.testing.assert_array_equal(result.max, flat.max(-1).astype(np.float32))
    np.testing.assert_array_equal(result.min, flat.min(-1).astype(np.float32))


def test_histogram_and_quantiles(result, acts):
    edges = histogram_edges()
    assert np.array_equal(result.hist_edges, edges) and np.all(np.diff(edges) > 0)
    x = acts[:, :, 1:]
    L, N, T, D = x.shape
    flat = x.transpose(0, 3, 1, 2).reshape(L, D, N * T)
    nb = edges.size - 1
    bins = histogram_bins(flat)  # numpy searchsorted, independent of the harvest's bit-table binning
    expect = np.zeros((L, D, nb), dtype=np.int64)
    for layer in range(L):
        for i in range(D):
            expect[layer, i] = np.bincount(bins[layer, i], minlength=nb)
    np.testing.assert_array_equal(result.hist_counts, expect)
    # approximate quantiles: monotone, inside [min, max], and inside the histogram bin that
    # holds the order statistic of rank ceil(q * n)
    q = result.quantiles
    levels = result.quantile_levels
    assert q.shape == (L, D, len(levels))
    assert np.all(np.diff(q, axis=-1) >= 0)
    assert np.all(q >= result.min[..., None]) and np.all(q <= result.max[..., None])
    n = flat.shape[-1]
    ranks = np.maximum(np.ceil(levels * n).astype(int) - 1, 0)
    order_stat = np.sort(flat, axis=-1)[..., ranks]          # [L, D, n_levels]
    b = histogram_bins(order_stat)
    tol = 1e-6 * np.abs(q) + 1e-12
    assert np.all(q >= edges[b] - tol) and np.all(q <= edges[b + 1] + tol)


@pytest.mark.parametrize("kind", ["max", "min"])
def test_top_k_contexts_match_brute_force(result, acts, kind):
    body = acts[:, :, 1:]  # [L, N, T-1, D]
    per_ctx = body.max(axis=2) if kind == "max" else body.min(axis=2)   # [L, N, D]
    pivot = (body.argmax(axis=2) if kind == "max" else body.argmin(axis=2)) + 1
    vals, ctxs = getattr(result, f"top_{kind}_val"), getattr(result, f"top_{kind}_ctx")
    pivots, per_tok = getattr(result, f"top_{kind}_pivot"), getattr(result, f"top_{kind}_acts")
    L, N, D = per_ctx.shape
    for layer in range(L):
        for i in range(D):
            v = per_ctx[layer, :, i]
            order = np.lexsort((np.arange(N), -v if kind == "max" else v))[:TOP_K]
            np.testing.assert_array_equal(ctxs[layer, i], order)
            np.testing.assert_array_equal(vals[layer, i], v[order])
            np.testing.assert_array_equal(pivots[layer, i], pivot[layer, order, i])
            np.testing.assert_array_equal(per_tok[layer, i], acts[layer, order, :, i])
    # one entry per context
    assert all(len(set(ctxs[l, i])) == TOP_K for l in range(L) for i in range(D))


def test_token_statistics(result, acts, ctx):
    tokens = ctx.tokens[:, 1:].numpy().reshape(-1)
    ids = tracked_tokens(ctx.tokens, MIN_COUNT, skip=1)
    counts = np.bincount(tokens)
    assert np.all(counts[ids] >= MIN_COUNT) and ((counts >= MIN_COUNT).sum() == ids.size)
    x = acts[:, :, 1:].reshape(acts.shape[0], -1, acts.shape[-1])  # [L, N*(T-1), D]
    L, _, D = x.shape
    mean = np.stack([x[:, tokens == t].astype(np.float64).mean(1) for t in ids], axis=1)  # [L, n_ids, D]
    mx = np.stack([x[:, tokens == t].max(1) for t in ids], axis=1)
    for layer in range(L):
        for i in range(D):
            order = np.argsort(-mean[layer, :, i], kind="stable")[:TOP_K]
            np.testing.assert_array_equal(result.token_ids[layer, i], ids[order])
            np.testing.assert_allclose(result.token_mean[layer, i], mean[layer, order, i], rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(result.token_max[layer, i], mx[layer, order, i])
            np.testing.assert_array_equal(result.token_count[layer, i], counts[ids[order]])


def test_interest_ranks(result):
    L, D = result.mean.shape
    assert sorted(result.interest_rank.reshape(-1).tolist()) == list(range(L * D))
    best = np.unravel_index(np.argmax(result.interest), result.interest.shape)
    assert result.interest_rank[best] == 0 and result.interest_layer_rank[best] == 0
    for layer in range(L):
        assert sorted(result.interest_layer_rank[layer].tolist()) == list(range(D))
        o = np.argsort(result.interest_layer_rank[layer])
        assert np.all(np.diff(result.interest[layer, o]) <= 0)


def _arrays(r) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(r).items() if isinstance(v, np.ndarray)}


def test_resume_after_interrupt_is_identical(model, ctx, result, tmp_path):
    kw = dict(top_k=TOP_K, batch_size=8, min_token_count=MIN_COUNT, progress=False, checkpoint_dir=tmp_path)
    assert harvest(model, ctx.tokens, checkpoint_every=1, max_batches=2, **kw) is None  # "interrupted"
    [ckpt] = list(tmp_path.glob("harvest-*.pt"))
    state, _ = Harvest.load(ckpt)
    assert state.next_index == 16
    resumed = harvest(model, ctx.tokens, **kw)
    fresh = _arrays(result)
    for name, arr in _arrays(resumed).items():
        np.testing.assert_array_equal(arr, fresh[name], err_msg=name)
    # a finished checkpoint answers at once, with the same results
    again = harvest(model, ctx.tokens, **kw)
    for name, arr in _arrays(again).items():
        np.testing.assert_array_equal(arr, fresh[name], err_msg=name)


def test_gelu_model_harvest(ctx):
    m = tiny_model(seed=1, gated=False)
    assert m.info.act_fn.startswith("gelu") and not m.gated
    r = harvest(m, ctx.tokens[:12], top_k=3, batch_size=4, progress=False)
    a = torch.cat([x for _, _, x in iter_mlp_activations(m, ctx.tokens[:12], batch_size=4)], dim=1).numpy()
    body = a[:, :, 1:]
    np.testing.assert_array_equal(r.max, body.max(axis=(1, 2)))
    assert body.min() >= -0.2  # GELU's floor, unlike SiLU-gated products
    np.testing.assert_array_equal(r.top_max_ctx[:, :, 0], body.max(axis=2).argmax(axis=1))


def test_random_examples_are_a_uniform_sample_chosen_in_one_pass(model, ctx, acts, tmp_path):
    """random_k contexts per neuron by a fixed per-(context, neuron) random key: the same for any
    batch size and after a resume, different between neurons, spread over the corpus, with the
    neuron's activations over each."""
    from loaders.activations import _random_key

    kw = dict(top_k=TOP_K, min_token_count=MIN_COUNT, progress=False, random_k=4)
    r8 = harvest(model, ctx.tokens, batch_size=8, **kw)
    r5 = harvest(model, ctx.tokens, batch_size=5, **kw)
    np.testing.assert_array_equal(r8.random_ctx, r5.random_ctx)
    N = ctx.tokens.shape[0]
    L, D = r8.n_layers, r8.d_mlp
    keys = _random_key(torch.arange(N), L * D).numpy()  # [N, L*D]
    want = np.argsort(-keys, axis=0, kind="stable")[:4].T.reshape(L, D, 4)
    assert np.array_equal(np.sort(r8.random_ctx, axis=-1), np.sort(want, axis=-1))
    assert len({tuple(r8.random_ctx[0, i]) for i in range(D)}) > D // 2  # neurons differ
    l, i, k = 1, 7, 2
    c = r8.random_ctx[l, i, k]
    np.testing.assert_allclose(r8.random_acts[l, i, k], acts[l, c, :, i], rtol=1e-6)
    # checkpointed and resumed: the same sample
    assert harvest(model, ctx.tokens, batch_size=8, checkpoint_dir=tmp_path, checkpoint_every=1, max_batches=2,
                   **kw) is None
    resumed = harvest(model, ctx.tokens, batch_size=8, checkpoint_dir=tmp_path, **kw)
    np.testing.assert_array_equal(resumed.random_ctx, r8.random_ctx)
