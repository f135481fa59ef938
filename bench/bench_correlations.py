"""All-pairs activation correlation (streaming Pearson, top/bottom-k, summaries) vs the bare
forward passes over the same tokens, in the same run.

The baseline runs the model over the contexts and reads the MLP activations
(``blocks.{l}.mlp.hook_post``), then drops them. The correlation pass does the same and
accumulates ``Σxy`` for every neuron pair (the upper triangle) in row blocks within
``--memory-mb``; when the budget holds fewer rows than neurons it replays the corpus once per
block, so the ratio includes those extra passes. Per token the pairs cost N²/2 multiply-adds
against the forward's ~2 × parameters, so the ratio grows with N. Peak memory: the process's
peak RSS during the correlation pass (VmHWM), and what it adds to the RSS before it.

    python bench/bench_correlations.py                          # tiny random model (4 x 512)
    python bench/bench_correlations.py --memory-mb 8            # several passes, disk replay
    python bench/bench_correlations.py --memory-mb 8 --replay   # several forward passes
    python bench/bench_correlations.py --model smollm2-135m --contexts 16 --ctx 64
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="'tiny' (random, offline) or a load_model name")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-mlp", type=int, default=512)
    ap.add_argument("--contexts", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=64, help="tokens per context")
    ap.add_argument("--replay", action="store_true",
                    help="with several passes, re-run the forward pass instead of caching activations on disk")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--memory-mb", type=float, default=2048)
    a = ap.parse_args()

    import torch

    from loaders.correlations import bridge_mlp_activations, correlate, flatten_activations, row_blocks
    from loaders.memory import peak_rss_mb, release_memory, reset_peak
    from loaders.model import load_model, tiny_model

    model = (tiny_model(seed=0, n_layers=a.layers, d_model=a.d_model, d_mlp=a.d_mlp, n_heads=4)
             if a.model == "tiny" else load_model(a.model))
    info = model.info
    N = info.n_layers * info.d_mlp
    g = torch.Generator().manual_seed(0)
    contexts = torch.randint(3, min(info.d_vocab, 20000), (a.contexts, a.ctx), generator=g)
    if model.bos_token_id is not None:
        contexts[:, 0] = model.bos_token_id
    ignore = {model.bos_token_id} - {None}
    blocks = row_blocks(N, a.memory_mb)
    passes = len(blocks)
    print(f"{model.name}: {info.n_layers} x {info.d_mlp} = {N} neurons; {a.contexts} x {a.ctx} tokens; "
          f"budget {a.memory_mb:g} MB -> {passes} pass(es), {len(blocks[0])} rows in the first block; "
          f"a full float64 Σxy would take {N * N * 8 / 2**20:,.0f} MB")

    def forward():
        for _, toks, acts in bridge_mlp_activations(model, contexts, a.batch_size):
            yield flatten_activations(toks, acts, ignore)

    def timed_bare() -> tuple[float, int]:
        t = time.perf_counter()
        n = sum(x.shape[0] for x in forward())
        return time.perf_counter() - t, n

    timed_bare()  # warm-up: first calls allocate and fill caches
    bare, n_tok = timed_bare()

    release_memory()
    reset_peak()
    before = peak_rss_mb()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = correlate(forward, N, a.k, memory_mb=a.memory_mb, progress=False,
                        cache_dir=None if a.replay else tmp)
    corr = time.perf_counter() - t
    peak = peak_rss_mb()
    assert res.n_tokens == n_tok
    bare = min(bare, timed_bare()[0])  # the better of a bare run before and one after
    print(f"bare forward        {bare:8.2f} s   ({n_tok} tokens kept, BOS dropped)")
    print(f"correlation pass    {corr:8.2f} s   (all pairs, top/bottom-{a.k}, mean/std/100-bin histograms)")
    how = "" if passes == 1 else (f", {passes} forward passes inside" if a.replay
                                  else ", 1 forward pass + activations replayed from disk")
    print(f"ratio correlation / bare forward = {corr / bare:.2f}  ({passes} pass(es){how})")
    print(f"peak RSS during the correlation pass {peak:,.0f} MiB (+{peak - before:,.0f} MiB over the {before:,.0f} before it)")


if __name__ == "__main__":
    main()
