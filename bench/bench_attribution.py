"""Attribution benchmark: seconds per prompt of an attribution graph against the bare forward +
backward of the same prompt, measured side by side in one run.

    python bench/bench_attribution.py [--model smollm2-135m] [--prompts 4] [--max-neurons 200]
    python bench/bench_attribution.py --corpus-len 16 --max-neurons 64 --threads 1   # the demo's settings
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from loaders.attribution import attribute, corpus_prompts, time_forward_backward  # noqa: E402
from loaders.model import load_model, tiny_model  # noqa: E402

PROMPTS = ["The capital of France is", "In the beginning God created the heaven and the",
           "def add(a, b):\n    return a +", "And the earth was without form, and"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m",
                    help="smollm2-135m, tiny (Llama-style) or tiny-gelu (GPT-2-style)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--max-neurons", type=int, default=200)
    ap.add_argument("--corpus-len", type=int, default=0,
                    help="use the first corpus prompts of this many tokens (as `neurograph circuits` does)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = tiny_model(gated=a.model == "tiny") if a.model in ("tiny", "tiny-gelu") else load_model(a.model)
    prompts = corpus_prompts(model, a.prompts, a.corpus_len) if a.corpus_len else (PROMPTS * 4)[: a.prompts]
    time_forward_backward(model, PROMPTS[0])  # warm up
    rows = []
    for prompt in prompts:
        base = statistics.median(time_forward_backward(model, prompt) for _ in range(3))
        t0 = time.perf_counter()
        g = attribute(model, prompt, None, max_neurons=a.max_neurons)
        took = time.perf_counter() - t0
        rows.append((took, base))
        print(f"{len(g.tokens):3d} tokens -> {g.target!r}: {took:.2f} s vs forward+backward {base:.3f} s "
              f"(ratio {took / base:.1f}); {len(g.nodes)} nodes, {len(g.edges)} edges kept of {g.candidates} candidates")
    took, base = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
    print(f"median: {took:.2f} s per prompt vs {base:.3f} s (ratio {took / base:.1f}; "
          f"{torch.get_num_threads()} threads); "
          f"a graph needs 1 + ceil(candidates / 32) batched backward passes")


if __name__ == "__main__":
    main()
