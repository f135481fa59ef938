"""Activation harvest cost against a bare forward pass over the same tokens (goal: <= 1.25).

    python bench/bench_harvest.py                       # demo model, 8192 tokens
    python bench/bench_harvest.py --tokens 32768 --model tiny

For each batch it times, back to back, (a) the bare forward (logits, no hooks) and (b) the
harvest step (hooks on every layer's ``mlp.hook_post``, the pass stopped after the last MLP,
plus every statistic folded into the accumulator). Interleaving the two keeps the ratio honest
on a shared, noisy machine. Peak memory is the process's max RSS (getrusage).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from loaders.activations import Harvest, _capture, _skip_for, tracked_tokens  # noqa: E402
from loaders.corpus import corpus_contexts  # noqa: E402
from loaders.model import load_model, tiny_model  # noqa: E402


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="'smollm2-135m' (offline demo) or 'tiny'")
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--ctx-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model = tiny_model() if args.model == "tiny" else load_model(args.model)
    ctx = corpus_contexts(model, "default", args.tokens, args.ctx_len).tokens
    rss_model = rss_mib()
    L, D = model.info.n_layers, model.info.d_mlp
    skip = _skip_for(model, ctx)
    h = Harvest(L, D, ctx.shape[1], top_k=args.top_k, token_ids=tracked_tokens(ctx, 5, skip), skip=skip)
    layers = list(range(L))
    bare = capture = fold = 0.0
    with torch.inference_mode():
        model.bridge(ctx[:1])  # warm-up
        for first in range(0, ctx.shape[0], args.batch_size):
            toks = ctx[first:first + args.batch_size]
            t0 = time.perf_counter()
            model.bridge(toks)
            t1 = time.perf_counter()
            buf = _capture(model, toks, layers)
            t2 = time.perf_counter()
            h.update(first, toks, buf)
            t3 = time.perf_counter()
            bare, capture, fold = bare + t1 - t0, capture + t2 - t1, fold + t3 - t2
    t4 = time.perf_counter()
    h.result()
    finalize = time.perf_counter() - t4
    out = {
        "model": model.name, "tokens": int(ctx.numel()), "contexts": int(ctx.shape[0]),
        "threads": torch.get_num_threads(),
        "bare_forward_s": round(bare, 3), "harvest_s": round(capture + fold, 3),
        "capture_s": round(capture, 3), "stats_s": round(fold, 3), "finalize_s": round(finalize, 3),
        "ratio_harvest_over_forward": round((capture + fold) / bare, 3),
        "ratio_with_finalize": round((capture + fold + finalize) / bare, 3),
        "tokens_per_s": round(ctx.numel() / (capture + fold), 1),
        "peak_rss_mib": round(rss_mib(), 1), "rss_after_model_load_mib": round(rss_model, 1),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:28s} {v}")
        print(f"{'goal':28s} ratio <= 1.25: {'met' if out['ratio_harvest_over_forward'] <= 1.25 else 'NOT met'}")
    return out


if __name__ == "__main__":
    main()
