"""Neuron↔neuron weight composition (all pairs, all eight lists, top-k + summaries) vs the
bare matrix products it needs, in the same run.

The baseline computes the four products that carry every score once — in·inᵀ, out·outᵀ,
out·inᵀ (whose rows are out_in and columns in_out; its later-layer part scaled by the norms
is the virtual weight) and out·gateᵀ (later layers only) — in row blocks, and throws them
away. The ratio is what top-k, bottom-k, histograms and moments cost on top, less what
composition saves by computing only half of the two symmetric products (in·inᵀ, out·outᵀ).
Each side runs in a fresh process so its peak memory (max RSS) is its own; wall and CPU
seconds are both reported (CPU time is steadier when other jobs share the cores).

    python bench/bench_composition.py                    # 4 x 1024 neurons, d_model 256
    python bench/bench_composition.py --preset smollm2   # 30 x 1536, d_model 576 (minutes)
    python bench/bench_composition.py --threads 1 --repeat 3   # steadier on a shared machine
    python bench/bench_composition.py --shards 4         # also: one shard of 4 (build --shard 0/4) vs the whole

With ``--shards N`` it also times shard 0/N (the layers with layer % N == 0: the tiles a whole
run computes that touch those neurons) and prints its ratio to the whole run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "small": dict(layers=4, d_model=256, d_mlp=1024, heads=4, kv_heads=4),
    "smollm2": dict(layers=30, d_model=576, d_mlp=1536, heads=9, kv_heads=3),
}


def _weights(a: argparse.Namespace):
    from loaders.weights import ModelWeights
    return ModelWeights.random(n_layers=a.layers, d_model=a.d_model, d_mlp=a.d_mlp, n_heads=a.heads,
                               n_kv_heads=a.kv_heads, d_vocab=64, gated=not a.no_gate, seed=0)


def _clock() -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, peak RSS in KB so far)."""
    return time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _since(start: tuple[float, float, int]) -> tuple[float, float, float]:
    """Wall and CPU seconds since ``start``, and how far the peak RSS rose (MB)."""
    wall, cpu, peak = _clock()
    return wall - start[0], cpu - start[1], (peak - start[2]) / 1024


def run_composition(a: argparse.Namespace, q: mp.Queue) -> None:
    import torch
    torch.set_num_threads(a.threads)
    from loaders.composition import neuron_composition
    w = _weights(a)
    start = _clock()
    neuron_composition(w, a.k, memory_mb=a.memory_mb, bins=a.bins, progress=False)
    q.put(_since(start))


def run_shard(a: argparse.Namespace, q: mp.Queue) -> None:
    import torch
    torch.set_num_threads(a.threads)
    from loaders.composition import neuron_composition
    w = _weights(a)
    start = _clock()
    neuron_composition(w, a.k, memory_mb=a.memory_mb, bins=a.bins, progress=False,
                       layers=[l for l in range(a.layers) if l % a.shards == 0])
    q.put(_since(start))


def run_bare(a: argparse.Namespace, q: mp.Queue) -> None:
    import torch
    torch.set_num_threads(a.threads)
    from loaders.composition import block_rows_for
    w = _weights(a)
    start = _clock()
    L, D = w.n_layers, w.d_mlp
    N = L * D
    ins, out = w.in_eff().reshape(N, -1), w.out_rows().reshape(N, -1)
    gate = w.gate_eff().reshape(N, -1) if w.gated else None
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    in_hat, out_hat = unit(ins), unit(out)
    B = min(D, block_rows_for(N, a.memory_mb))
    for l in range(L):
        for s in range(0, D, B):
            rows = slice(l * D + s, l * D + min(s + B, D))
            c = in_hat[rows] @ in_hat.T
            c = out_hat[rows] @ out_hat.T
            c = out_hat[rows] @ in_hat.T
            if gate is not None and l + 1 < L:
                c = out[rows] @ gate[(l + 1) * D:].T
            del c
    q.put(_since(start))


def measure(fn, a: argparse.Namespace) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of fn in a fresh process."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(a, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--d-mlp", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--no-gate", action="store_true", help="a plain (non-gated) MLP")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--memory-mb", type=float, default=512)
    ap.add_argument("--bins", type=int, default=100, help="histogram bins (0: no histograms)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--shards", type=int, default=0, help="also time shard 0 of this many (0: no)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each side, alternating; the fastest counts (a busy machine only slows runs down)")
    a = ap.parse_args()
    for key, v in PRESETS[a.preset].items():
        if getattr(a, key) is None:
            setattr(a, key, v)
    if a.threads == 0:
        import torch
        a.threads = torch.get_num_threads()
    N = a.layers * a.d_mlp
    print(f"{a.layers} layers x {a.d_mlp} neurons = {N} neurons, d_model {a.d_model}, "
          f"{'gated' if not a.no_gate else 'plain'} MLP, k={a.k}, block budget {a.memory_mb:g} MB, "
          f"{a.threads} threads")
    print(f"a dense float32 [N, N] matrix would take {N * N * 4 / 2**20:,.0f} MB")
    runs = [(measure(run_bare, a), measure(run_composition, a)) for _ in range(max(1, a.repeat))]
    bare_s, bare_cpu, bare_mb = (f(r[0][i] for r in runs) for i, f in enumerate((min, min, max)))
    comp_s, comp_cpu, comp_mb = (f(r[1][i] for r in runs) for i, f in enumerate((min, min, max)))
    print(f"bare matmuls      {bare_s:8.2f} s  ({bare_cpu:8.2f} s CPU)   peak +{bare_mb:8.0f} MB")
    print(f"composition       {comp_s:8.2f} s  ({comp_cpu:8.2f} s CPU)   peak +{comp_mb:8.0f} MB   (8 lists, "
          f"top/bottom-{a.k}, mean/std{f'/{a.bins}-bin histograms' if a.bins else ', no histograms'})")
    # CPU time is the steadier figure when other jobs share the cores
    print(f"ratio composition / bare matmuls = {comp_s / bare_s:.2f}  "
          f"(goal <= 1.5; CPU time {comp_cpu / bare_cpu:.2f})")
    if a.shards > 1:
        shard = [measure(run_shard, a) for _ in range(max(1, a.repeat))]
        sh_s, sh_cpu, sh_mb = min(r[0] for r in shard), min(r[1] for r in shard), max(r[2] for r in shard)
        own = len(range(0, a.layers, a.shards)) / a.layers
        print(f"shard 0/{a.shards}        {sh_s:8.2f} s  ({sh_cpu:8.2f} s CPU)   peak +{sh_mb:8.0f} MB   "
              f"({own:.0%} of the neurons)")
        print(f"ratio shard 0/{a.shards} / whole run = {sh_s / comp_s:.2f}  (CPU time {sh_cpu / comp_cpu:.2f}; "
              f"its rows and the columns feeding them: about {min(1.0, 2 * own):.2f} of the tiles at most)")


if __name__ == "__main__":
    main()
