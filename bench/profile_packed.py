"""Where a packed N2G forward pass spends its time: realistic token trees (contexts of 10-40
tokens, each with its masked variants, as the importance stage asks) packed by the real
``pack`` / ``packed_inputs``, chunked as ``_run_packed`` chunks them, run through
``loaders.activations._capture_packed`` on the float32 and bfloat16 copies of the demo model
(1 thread), under the TransformerLens bridge and on the plain Hugging Face model
(``_plain_view``). Prints tokens per CPU second per copy and path, alternating, and the per-op
breakdown (torch.profiler, self CPU time).

Measured (16 rows x 256 tokens to layer 29, 1 thread, busy box): bfloat16 under the bridge
1,122 tokens per CPU second, its time in casts (copy_ 21%: the float32 softmax and back),
softmax 18%, matmuls only 20%; on the plain model with SDPA 1,933 (1.72x): matmuls 35%,
fused attention 17%, the rest RMSNorm / rotary / SiLU / residual element-wise ops. float32:
matmuls ~60%, plain eager ~1.04-1.10x.

    python bench/profile_packed.py                    # ~4 min
    python bench/profile_packed.py --contexts 24 --layer 29 --max-row 256 --batch-tokens 4096
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def trees(n: int, seed: int = 0, mask: int = 220) -> list[tuple[int, ...]]:
    """n contexts of 10-40 tokens and, per context, each position masked in turn."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        ctx = [int(t) for t in rng.integers(300, 40000, size=int(rng.integers(10, 41)))]
        seqs.append(tuple(ctx))
        seqs += [tuple(ctx[:j] + [mask] + ctx[j + 1:]) for j in range(len(ctx))]
    return seqs


def chunks(seqs, max_row: int, batch_tokens: int, batch_size: int = 64) -> list[list]:
    """The forward calls ``_run_packed`` makes for these sequences."""
    from loaders.n2g.batched import pack, row_chunks

    rows, _ = pack(seqs, max_row=max_row)
    return [[rows[k] for k in chunk] for chunk in row_chunks([len(r[0]) for r in rows], batch_size, batch_tokens)]


def run(model, calls, want, plain: bool = True) -> tuple[float, int]:
    """CPU seconds and tokens (row slots, padding included) for these forward calls."""
    from loaders.activations import _capture_packed
    from loaders.n2g.batched import packed_inputs

    c0, toks = time.process_time(), 0
    for rows in calls:
        ids, pos, mask = packed_inputs(rows, pad=model.pad_token_id)
        toks += sum(len(r[0]) for r in rows)
        _capture_packed(model, ids, pos, mask, want, plain=plain)
    return time.process_time() - c0, toks


def breakdown(model, calls, want, top: int, plain: bool) -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(model, calls, want, plain)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=40)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", type=int, default=24)
    ap.add_argument("--layer", type=int, default=29, help="deepest layer asked (the pass stops after it)")
    ap.add_argument("--cols", type=int, default=16, help="neurons read per layer")
    ap.add_argument("--max-row", type=int, default=256)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-profile", action="store_true")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from loaders.activations import _plain_view
    from loaders.model import load_model

    seqs = trees(a.contexts)
    calls = chunks(seqs, a.max_row, a.batch_tokens)
    want = {a.layer: list(range(0, 1536, 1536 // a.cols))[: a.cols]}
    print(f"{len(seqs)} sequences, {sum(map(len, seqs))} tokens asked, "
          f"{sum(len(r[0]) for c in calls for r in c)} run in {len(calls)} calls "
          f"(rows {[len(c) for c in calls]}, row length <= {a.max_row})")
    for dt in a.dtypes.split(","):
        model = load_model(dtype=None if dt == "float32" else dt)
        hf = model.bridge.original_model
        print(f"\n== {dt}: bridge attention reimplemented (eager), plain "
              f"{_plain_view(model)[0].config._attn_implementation}")
        spent = {"bridge": 0.0, "plain": 0.0}
        for rep in range(a.repeats):  # A/B alternating: the machine's load drifts
            for path in spent:
                s, toks = run(model, calls, want, plain=path == "plain")
                spent[path] += s
        print(f"{toks} tokens to layer {a.layer}, tokens per CPU second: " + ", ".join(
            f"{p} {a.repeats * toks / s:.0f}" for p, s in spent.items())
            + f"; plain / bridge {spent['bridge'] / spent['plain']:.2f}x")
        if not a.no_profile:
            for path in spent:
                print(f"-- {dt}, {path}:")
                print(breakdown(model, calls, want, a.top, plain=path == "plain"))


if __name__ == "__main__":
    main()
