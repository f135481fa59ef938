"""Streaming Pearson over all neuron pairs, in row blocks, against numpy's corrcoef."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.correlations import (StreamingCorrelation, correlate, flatten_activations, row_blocks,
                                  rows_for_budget)

N, T = 60, 3000


@pytest.fixture(scope="module")
def acts() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N)).astype(np.float32) + 5.0  # an offset, like post-activations
    x[:, 5] = 2 * x[:, 40] + 0.3 * rng.standard_normal(T)       # planted: 5 ~ 40
    x[:, 7] = -x[:, 55] + 0.5 * rng.standard_normal(T)           # planted: 7 ~ -55
    x[:, 12] = 1000.0 + 0.01 * rng.standard_normal(T)            # large mean, tiny spread
    x[:, 13] = x[:, 12] + 0.001 * rng.standard_normal(T)
    return x


def batches(x: np.ndarray, size: int = 700):
    return lambda: (torch.from_numpy(x[i:i + size]) for i in range(0, len(x), size))


@pytest.mark.parametrize("memory_mb", [1.0, 0.002])  # one pass; then upper-triangle blocks, 13 passes
def test_top_and_bottom_match_corrcoef(acts, memory_mb):
    k = 4
    res = correlate(batches(acts), N, k, memory_mb=memory_mb, progress=False)
    ref = np.corrcoef(acts.astype(np.float64), rowvar=False)
    assert res.n_tokens == T
    for i in range(N):
        row = ref[i].copy()
        row[i] = np.nan
        others = np.delete(np.arange(N), i)
        order = others[np.argsort(-row[others])]
        assert [j for j, _ in res.top.rows(i)] == order[:k].tolist(), i
        assert [j for j, _ in res.bottom.rows(i)] == order[::-1][:k].tolist(), i
        np.testing.assert_allclose([v for _, v in res.top.rows(i)], row[order[:k]], atol=2e-4)
        vals = row[others]
        assert res.summary.mean[i] == pytest.approx(vals.mean(), abs=1e-4)
        assert res.summary.std[i] == pytest.approx(vals.std(), abs=1e-4)
        assert res.summary.hist[i].sum() == N - 1
    assert res.top.rows(5)[0][0] == 40 and res.top.rows(40)[0][0] == 5
    assert res.bottom.rows(7)[0][0] == 55 and res.bottom.rows(7)[0][1] < -0.8
    assert res.top.rows(12)[0][0] == 13  # shifted sums keep a large-mean pair exact


def test_several_passes_need_a_replayable_source(acts):
    one_shot = (torch.from_numpy(acts[i:i + 500]) for i in range(0, T, 500))
    with pytest.raises(ValueError, match="passes"):
        correlate(one_shot, N, 3, memory_mb=0.01, progress=False)
    # a budget holding the whole block takes a one-shot iterable (e.g. inside the harvest)
    one_shot = (torch.from_numpy(acts[i:i + 500]) for i in range(0, T, 500))
    assert correlate(one_shot, N, 3, memory_mb=1.0, progress=False).n_tokens == T


def test_budget_bounds_the_accumulator():
    R = rows_for_budget(46080, 2048)
    assert R * 46080 * 12 <= 2048 * 2**20 and R > 1000
    sc = StreamingCorrelation(100, range(10, 30))
    assert sc._buf.shape == (20, 100) and sc.cross is None  # float64 sums only after FLUSH tokens
    with pytest.raises(ValueError, match="activations"):
        sc.add(torch.zeros(5, 99))


def test_flatten_drops_bos_and_padding():
    L, B, Tt, D = 2, 2, 4, 3
    acts = torch.arange(L * B * Tt * D, dtype=torch.float32).reshape(L, B, Tt, D)
    tokens = torch.tensor([[1, 5, 6, 0], [1, 7, 0, 0]])  # 1 = BOS, 0 = pad
    x = flatten_activations(tokens, acts, ignore_ids={0, 1})
    assert x.shape == (3, L * D)
    # row of (batch 0, position 1): layer 0 then layer 1 values
    assert x[0].tolist() == acts[0, 0, 1].tolist() + acts[1, 0, 1].tolist()
    assert x[2].tolist() == acts[0, 1, 1].tolist() + acts[1, 1, 1].tolist()


def test_disk_cache_replays_a_one_shot_source(acts, tmp_path):
    calls = []

    def one_shot():
        calls.append(1)
        return (torch.from_numpy(acts[i:i + 700]) for i in range(0, T, 700))

    cached = correlate(one_shot, N, 3, memory_mb=0.01, cache_dir=tmp_path, progress=False)
    direct = correlate(batches(acts), N, 3, memory_mb=0.01, progress=False)
    assert len(calls) == 1  # 3 passes, one run of the source
    assert torch.equal(cached.top.indices, direct.top.indices)
    torch.testing.assert_close(cached.top.values, direct.top.values)
    assert len(list(tmp_path.glob("batch*.pt"))) == -(-T // 700)


def test_small_tiles_give_the_same_answer(acts, monkeypatch):
    import loaders.correlations as corr_module
    x = torch.from_numpy(acts)

    def finished(rows: int, cols: int):
        monkeypatch.setattr(corr_module, "TILE_ROWS", rows)
        monkeypatch.setattr(corr_module, "TILE_COLS", cols)
        sc = StreamingCorrelation(N, range(7, 50))
        for i in range(0, T, 700):
            sc.add(x[i:i + 700])
        return sc.finish(k=4)

    whole, tiled = finished(1024, 1536), finished(2, 7)  # one tile; tiles of 2 x 7
    for a, b in zip(whole[:2], tiled[:2]):
        assert torch.equal(a.values, b.values) and torch.equal(a.indices, b.indices)
    assert torch.equal(whole[2].n, tiled[2].n) and torch.equal(whole[2].hist, tiled[2].hist)
    for f in ("s1", "s2"):  # float32 sums per tile row, in float64 across tiles
        torch.testing.assert_close(getattr(whole[2], f), getattr(tiled[2], f), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("memory_mb, sub", [(0.002, 1024), (1.0, 7), (0.01, 5)])
def test_a_small_budget_gives_the_one_block_answer(acts, monkeypatch, memory_mb, sub):
    assert len(row_blocks(N, 1.0)) == 1 and len(row_blocks(N, 0.002)) > 5
    one = correlate(batches(acts), N, 4, memory_mb=1.0, progress=False)
    monkeypatch.setattr(StreamingCorrelation, "SUB", sub)  # triangles within a block too
    many = correlate(batches(acts), N, 4, memory_mb=memory_mb, progress=False)
    for a, b in ((one.top, many.top), (one.bottom, many.bottom)):
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.values, b.values, rtol=0, atol=1e-5)  # float32 products, other shapes
    assert torch.equal(one.summary.n, many.summary.n) and torch.equal(one.summary.hist, many.summary.hist)
    torch.testing.assert_close(one.summary.mean, many.summary.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(one.summary.std, many.summary.std, rtol=0, atol=1e-6)


def test_upper_blocks_cover_every_pair_once():
    blocks = row_blocks(1000, 5.0)
    assert blocks[0].start == 0 and blocks[-1].stop == 1000
    assert all(x.stop == y.start for x, y in zip(blocks, blocks[1:]))
    assert all(len(b) * (1000 - b.start) * 12 <= 5.0 * 2**20 for b in blocks)
    assert len(blocks) < -(-1000 // rows_for_budget(1000, 5.0))  # fewer passes than full rows


def test_float64_sums_after_a_flush_agree(acts, monkeypatch):
    plain = correlate(batches(acts), N, 4, memory_mb=0.01, progress=False)
    monkeypatch.setattr(StreamingCorrelation, "FLUSH", 700)  # a flush after every batch
    flushed = correlate(batches(acts), N, 4, memory_mb=0.01, progress=False)
    for a, b in ((plain.top, flushed.top), (plain.bottom, flushed.bottom)):
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.values, b.values, rtol=0, atol=1e-5)
    assert torch.equal(plain.summary.hist, flushed.summary.hist)
