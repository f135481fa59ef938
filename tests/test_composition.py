"""Weight composition (neuron↔neuron, neuron↔head, neuron↔token) against dense computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.composition import ALL_LISTS, head_composition, neuron_composition, token_effects
from loaders.topk import histogram_rows
from loaders.weights import ModelWeights, repeat_kv

L, DM, D, H, V = 3, 16, 12, 4, 40
N = L * D


@pytest.fixture(scope="module")
def w() -> ModelWeights:
    return ModelWeights.random(n_layers=L, d_model=DM, d_mlp=D, n_heads=H, d_vocab=V, n_kv_heads=2, seed=3)


def dense_lists(w: ModelWeights) -> dict[str, np.ndarray]:
    """Every list as a dense [owner, partner] matrix, NaN where the partner is not allowed."""
    L, D, DM = w.n_layers, w.d_mlp, w.d_model
    N = L * D
    ins = (w.W_in.transpose(1, 2) * w.ln2[:, None, :]).reshape(N, DM).double().numpy()
    out = w.W_out.reshape(N, DM).double().numpy()
    gate = (w.W_gate.transpose(1, 2) * w.ln2[:, None, :]).reshape(N, DM).double().numpy()
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cos = lambda a, b: unit(a) @ unit(b).T  # noqa: E731
    layer = np.arange(N) // D
    later = layer[None, :] > layer[:, None]
    m = {"in_in": cos(ins, ins), "in_out": cos(ins, out), "out_in": cos(out, ins), "out_out": cos(out, out)}
    for x in m.values():
        np.fill_diagonal(x, 0.0)  # Universal Neurons zeroes the diagonal
    m["virtual_down"] = np.where(later, out @ ins.T, np.nan)
    m["virtual_up"] = np.where(later.T, ins @ out.T, np.nan)   # [reader, writer]
    m["gate_virtual_down"] = np.where(later, out @ gate.T, np.nan)
    m["gate_virtual_up"] = np.where(later.T, gate @ out.T, np.nan)
    return m


def assert_lists_match_dense(w: ModelWeights, got: dict, k: int, bins: int = 100) -> None:
    """Top/bottom partners in order, values, n/mean/std and histograms of every owner."""
    for name, dense in dense_lists(w).items():
        lst = got[name]
        N = dense.shape[0]
        allowed = ~np.isnan(dense)
        if name in ("in_in", "in_out", "out_in", "out_out"):
            np.fill_diagonal(allowed, False)  # self is not an edge
        n_allowed = allowed.sum(1)
        slots = np.arange(k)[None, :] < n_allowed[:, None]
        for top, sign in ((lst.top, 1), (lst.bottom, -1)):
            score = np.where(allowed, sign * dense, -np.inf)
            order = np.argsort(-score, axis=1, kind="stable")[:, :k]
            expect = np.where(slots, order, -1)
            assert (top.indices.numpy() == expect).all(), (name, sign, np.argwhere(top.indices.numpy() != expect)[:3])
            v = np.take_along_axis(dense, order, axis=1)
            np.testing.assert_allclose(top.values.numpy()[slots], v[slots], rtol=1e-4, atol=1e-5)
        # the summary covers every allowed partner (plus the zeroed self for cosines)
        counted = ~np.isnan(dense)
        n = counted.sum(1)
        assert (lst.summary.n.numpy() == n).all(), name
        vals = np.where(counted, dense, 0.0)
        mean = vals.sum(1) / np.maximum(n, 1)
        std = np.sqrt(np.maximum((vals ** 2).sum(1) / np.maximum(n, 1) - mean ** 2, 0))
        np.testing.assert_allclose(lst.summary.mean.numpy(), mean, atol=1e-5)
        np.testing.assert_allclose(lst.summary.std.numpy(), std, atol=1e-5)
        if not bins:
            assert lst.summary.hist.shape == (N, 0)
            continue
        lo, hi = lst.summary.lo, lst.summary.hi
        b = np.clip(np.floor((dense - lo) * (bins / (hi - lo))), 0, bins - 1)
        b = np.where(counted, b + (np.arange(N) * bins)[:, None], -1).astype(np.int64)
        expect = np.bincount(b[b >= 0], minlength=N * bins).reshape(N, bins)
        hist = lst.summary.hist.numpy()
        assert (hist.sum(1) == n).all(), name
        # float32 vs float64 can move a value sitting on a bin edge by one bin
        assert np.abs(hist - expect).sum(1).max() <= 2, name


# tiny tiles (2 rows x 4 columns, pieces that split layers and the diagonal), one tile per
# layer, and the whole model in one tile
@pytest.mark.parametrize("memory_mb", [0.0001, 0.002, 64])
def test_neuron_lists_match_dense(w, memory_mb):
    k = 5
    got = neuron_composition(w, k, memory_mb=memory_mb, progress=False)
    assert set(got) == set(ALL_LISTS)
    assert_lists_match_dense(w, got, k)


def test_neuron_lists_match_dense_when_many_partners_share_a_tile():
    """Wide tiles and small k: the candidate filters look at groups of several entries."""
    w = ModelWeights.random(n_layers=3, d_model=24, d_mlp=400, n_heads=4, d_vocab=V, seed=4)
    got = neuron_composition(w, 2, progress=False)
    assert_lists_match_dense(w, got, 2)


def test_neuron_lists_without_histograms():
    w = ModelWeights.random(n_layers=2, d_model=16, d_mlp=40, n_heads=4, d_vocab=V, seed=5)
    got = neuron_composition(w, 3, bins=0, progress=False)
    assert_lists_match_dense(w, got, 3, bins=0)


def test_lists_longer_than_the_partners():
    """k beyond the number of partners: every allowed partner, then -1 padding."""
    w = ModelWeights.random(n_layers=2, d_model=16, d_mlp=6, n_heads=4, d_vocab=V, seed=6)
    got = neuron_composition(w, 9, progress=False)
    assert_lists_match_dense(w, got, 9)
    assert got["virtual_down"].top.rows(0)[-1][0] >= 6 and len(got["virtual_down"].top.rows(0)) == 6


def test_virtual_range_covers_the_weights(w):
    got = neuron_composition(w, 3, lists=["virtual_down"], progress=False)
    dense = dense_lists(w)["virtual_down"]
    assert got["virtual_down"].summary.hi >= np.nanmax(np.abs(dense)) * 0.5
    assert set(got) == {"virtual_down"}


def test_histogram_rows_counts_every_value_once():
    x = torch.tensor([[-2.0, -1.0, 0.0, 0.999, 1.0, 3.0]])
    h = histogram_rows(x, -1.0, 1.0, 4)
    assert h.tolist() == [[2, 0, 1, 3]]  # out-of-range values land in the end bins


def test_unknown_list_is_refused(w):
    with pytest.raises(ValueError, match="unknown composition lists"):
        neuron_composition(w, 3, lists=["in_in", "sideways"], progress=False)


def test_planted_writer_is_the_readers_top_input():
    """Neuron A (layer 0) writes exactly along neuron B's (layer 2) input direction."""
    w = ModelWeights.random(n_layers=L, d_model=DM, d_mlp=D, n_heads=H, d_vocab=V, seed=11)
    a, b = (0, 4), (2, 7)
    u = torch.randn(DM, generator=torch.Generator().manual_seed(5))
    u /= u.norm()
    w.W_out[a[0], a[1]] = 3 * u
    w.W_in[b[0], :, b[1]] = 3 * u / w.ln2[b[0]]    # ln2-folded input is 3u
    w.W_gate[b[0], :, b[1]] = -3 * u / w.ln2[b[0]]  # the gate reads -u: A inhibits B's gate
    ga, gb = a[0] * D + a[1], b[0] * D + b[1]
    got = neuron_composition(w, 3, progress=False)
    assert got["in_out"].top.rows(gb)[0] == (ga, pytest.approx(1.0, abs=1e-5))
    assert got["out_in"].top.rows(ga)[0] == (gb, pytest.approx(1.0, abs=1e-5))
    assert got["virtual_up"].top.rows(gb)[0] == (ga, pytest.approx(9.0, rel=1e-4))
    assert got["virtual_down"].top.rows(ga)[0] == (gb, pytest.approx(9.0, rel=1e-4))
    assert got["gate_virtual_up"].bottom.rows(gb)[0] == (ga, pytest.approx(-9.0, rel=1e-4))


def test_head_composition_matches_dense_matrices(w):
    hc = head_composition(w, k=4, progress=False)
    Wq, Wk, Wv = (x.double() for x in w.qkv_eff())
    out = w.W_out.reshape(N, DM).double()
    ins = (w.W_in.transpose(1, 2) * w.ln2[:, None, :]).reshape(N, DM).double()
    out, ins = out / out.norm(dim=1, keepdim=True), ins / ins.norm(dim=1, keepdim=True)
    layer = torch.arange(N) // D
    for l in range(L):
        for h in range(H):
            QK = Wq[l, h] @ Wk[l, h].T                  # [query side, key side]
            OV = Wv[l, h] @ w.W_O[l, h].double()        # [in, out]
            QK, OV = QK / QK.norm(), OV / OV.norm()
            expect = {"K": (QK @ out.T).norm(dim=0), "Q": (QK.T @ out.T).norm(dim=0),
                      "V": (out @ OV).norm(dim=1), "O": (OV @ ins.T).norm(dim=0)}
            for kind, e in expect.items():
                valid = layer < l if kind != "O" else layer >= l
                got = hc.scores[kind][:, l, h]
                assert torch.isnan(got[~valid]).all()
                torch.testing.assert_close(got[valid].double(), e[valid], rtol=1e-4, atol=1e-5)


def test_head_labels_vs_universal_neurons_transcription(w):
    """Universal Neurons' k_comp, transcribed literally (QK.T contracted on its last axis),
    equals our Q score: their K/Q labels are swapped, ours follow Elhage et al."""
    hc = head_composition(w, k=4, progress=False)
    Wq, Wk, _ = (x.double() for x in w.qkv_eff())
    out = w.W_out[0].double()
    out = out / out.norm(dim=1, keepdim=True)
    W_QK_T = torch.stack([(Wq[2, h] @ Wk[2, h].T).T for h in range(H)])  # model.QK[2].T.AB
    W_QK_T = W_QK_T / W_QK_T.norm(dim=(1, 2), keepdim=True)
    un_k = torch.einsum("hqd,nd->nhq", W_QK_T, out).norm(dim=-1)
    torch.testing.assert_close(hc.scores["Q"][:D, 2].double(), un_k, rtol=1e-4, atol=1e-5)


def test_head_top_k_both_ways(w):
    hc = head_composition(w, k=3, progress=False)
    s = hc.scores["V"].reshape(N, L * H)
    for n in range(N):
        row = torch.nan_to_num(s[n], nan=-1.0)
        valid = int((~torch.isnan(s[n])).sum())
        expect = torch.argsort(row, descending=True)[: min(3, valid)].tolist()
        assert [j for j, _ in hc.by_neuron["V"].rows(n)] == expect
    col = torch.nan_to_num(s[:, 2 * H + 1], nan=-1.0)
    assert [n for n, _ in hc.by_head["V"].rows(2 * H + 1)] == torch.argsort(col, descending=True)[:3].tolist()
    assert hc.by_head["V"].rows(0) == []  # layer-0 heads read no earlier neuron


def test_gqa_repeats_kv_per_query_head():
    kv = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(1, 2, 3, 2)
    r = repeat_kv(kv, 4)
    assert r.shape == (1, 4, 3, 2)
    assert torch.equal(r[0, 0], kv[0, 0]) and torch.equal(r[0, 1], kv[0, 0]) and torch.equal(r[0, 3], kv[0, 1])
    with pytest.raises(ValueError):
        repeat_kv(kv, 3)


def test_token_effects_match_dense(w):
    te = token_effects(w, k=6, memory_mb=0.002, progress=False)
    ins = (w.W_in.transpose(1, 2) * w.ln2[:, None, :]).reshape(N, DM)
    inp = (w.W_E @ ins.T).T                                  # [neuron, token]
    outp = w.W_out.reshape(N, DM) @ (w.W_U * w.lnf[:, None])
    for name, dense in (("input", inp), ("output", outp)):
        for o in range(N):
            order = torch.argsort(dense[o], descending=True)
            top, bottom = getattr(te, f"{name}_top").rows(o), getattr(te, f"{name}_bottom").rows(o)
            assert [t for t, _ in top] == order[:6].tolist()
            assert [t for t, _ in bottom] == order.flip(0)[:6].tolist()
            np.testing.assert_allclose([v for _, v in top], dense[o, order[:6]].numpy(), rtol=1e-4, atol=1e-5)
            assert all(v < 0 for _, v in bottom[:1])


def test_layernorm_models_centre_reading_directions():
    w = ModelWeights.random(n_layers=2, d_model=8, d_mlp=6, n_heads=2, d_vocab=10, norm="ln", gated=False)
    assert torch.allclose(w.in_eff().sum(-1), torch.zeros(2, 6), atol=1e-5)
    assert w.gate_eff() is None
    got = neuron_composition(w, 2, progress=False)
    assert "gate_virtual_down" not in got and "virtual_down" in got
