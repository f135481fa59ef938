"""The N2G benchmark's neuron sample: the most interesting neurons first, deterministic, and
only neurons whose top windows all fire (so every held-out example has tokens to predict)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("bench_n2g", Path(__file__).resolve().parents[1] / "bench" / "bench_n2g.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _stats(seed: int = 0) -> dict[int, dict]:
    rng = np.random.default_rng(seed)
    W, T = 40, 8
    a = np.zeros((W, T, 4))
    a[:30, 3, 0] = 5.0 + rng.random(30)      # 0: sparse, fires in 30 windows
    a[:3, 5, 1] = 9.0                        # 1: sparser and stronger, but only 3 windows fire
    a[:, :, 2] = 1 + 0.1 * rng.random((W, T))  # 2: dense, always on
    # 3: never active
    stats: dict[int, dict] = {}
    for s in range(0, W, 16):  # in batches, as the scan reads them
        bench.accumulate(stats, 7, a[s:s + 16])
    return bench.finish(stats)


def test_most_interesting_neurons_whose_top_windows_all_fire():
    stats = _stats()
    assert stats[7]["wmax"].shape == (40, 4) and stats[7]["n"] == 320
    # neuron 1 is the most interesting (kurtosis, max, sparsity) but only 3 of its top 20
    # windows fire; neuron 3 never fires
    assert bench.interesting(stats, 3, top=20) == {7: [0, 2]}
    assert bench.interesting(stats, 1, top=20) == {7: [0]}
    assert bench.interesting(stats, 3, top=3) == {7: [1, 0, 2]}
    assert bench.interesting(_stats(), 3, top=20) == bench.interesting(stats, 3, top=20)


def _rows(pairs):
    return [{"n2g": {"firing": {"f1": f}}, "baseline": {"firing": {"f1": b}}} for f, b in pairs]


def test_paired_comparison_counts_signs_and_bootstraps_the_mean_difference():
    p = bench.paired_f1(_rows([(0.9, 0.5), (0.5, 0.5), (0.7, 0.6), (None, 0.4)]))
    assert p["signs"] == (2, 1, 0) and abs(p["mean"] - 0.5 / 3) < 1e-12
    assert 0 <= p["ci"][0] <= p["mean"] <= p["ci"][1] <= 0.4 + 1e-9
    # A gap that flips sign between neurons: the interval holds zero.
    mixed = bench.paired_f1(_rows([(0.9, 0.5), (0.5, 0.9), (0.6, 0.5), (0.5, 0.6)]))
    assert mixed["signs"] == (2, 0, 2) and mixed["ci"][0] < 0 < mixed["ci"][1]
    assert bench.paired_f1([]) == {"signs": (0, 0, 0), "mean": None, "ci": None}
