"""N2G sweep (every neuron at once, block by block of contexts) vs the demo's groups of 64
neurons in interest order, on the demo's path: SmolLM2-135M in float32 with a bfloat16 copy for
the fast stages, masking rechecked in float32, 10 + 40 substitutes from the model and its
embeddings (``loaders.pipeline``'s settings).

The corpus is the demo's size: 256 windows of 64 tokens (KJV, ``bench_n2g.corpus_windows``);
every neuron of every layer keeps its top 10 windows, split 5 train / 5 held out. A whole-model
run of either path takes hours on 2 cores, so both fit the same sample: every neuron's training
examples in ``--sample`` randomly drawn windows (the sweep's sharing is within a window, and
all neurons with examples there take part, so the sample keeps it). The sweep fits them all in
one lockstep; the baseline fits ``--baseline-neurons`` of those neurons, drawn at random, in
groups of 64 (a random draw shares about as little as the interest order: 3% of (window, pivot)
pairs). Both give partial tries (fitted on the sampled windows only): their graphs are compared,
and scored on the neurons' held-out examples for a paired F1 difference. Throughput is CPU
seconds per fitted (neuron, example) item, and neurons per CPU second projected with the
whole model's items per neuron.

    python bench/bench_n2g_sweep.py                        # 2 windows, ~10 min on one core
    python bench/bench_n2g_sweep.py --sample 4 --baseline-neurons 512
    python bench/bench_n2g_sweep.py --shard 0/2                 # one of the demo's two background jobs
    # the sweep against itself with other N2GConfig fields (no groups), e.g. a narrower recheck
    # margin and all-float32 masking:
    python bench/bench_n2g_sweep.py --baseline-neurons 0 --compare importance_recheck=0.05 --compare importance_recheck=None
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def top_examples(loaded, windows: list[list[int]], top: int):
    """(layer, index) -> its ``top`` windows by max activation as Examples (float32 model)."""
    import torch

    from loaders import activations as A
    from loaders.n2g import Example

    L, D = loaded.info.n_layers, loaded.info.d_mlp
    acts = np.empty((len(windows), len(windows[0]), L, D), dtype=np.float16)
    for first, _toks, a in A.iter_mlp_activations(loaded, torch.tensor(windows), batch_size=16):
        acts[first:first + a.shape[1]] = a.permute(1, 2, 0, 3).numpy().astype(np.float16)
    order = np.argsort(-acts.max(axis=1), axis=0, kind="stable")[:top]  # [top, L, D]
    return {(l, i): [Example(windows[w], acts[w, :, l, i].astype(np.float32).tolist()) for w in order[:, l, i]]
            for l in range(L) for i in range(D)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", type=int, default=256)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--sample", type=int, default=2, help="windows whose examples are fitted")
    ap.add_argument("--baseline-neurons", type=int, default=256)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", default=None, metavar="I/N",
                    help="only the neurons of layers with layer %% N == I, as `neurograph n2g --sweep --shard I/N` "
                         "(a shard's neurons share fewer contexts)")
    ap.add_argument("--compare", action="append", default=[], metavar="FIELD=VALUE[,FIELD=VALUE]",
                    help="also sweep with these N2GConfig fields changed (repeatable) and compare with the pipeline's "
                         "settings: examples per CPU second, graphs, paired F1; --baseline-neurons 0 skips the groups")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    import bench_n2g
    from loaders.model import load_model
    from loaders.n2g.batched import LayerStats
    from loaders.n2g.sweep import plan_sweep, sweep_all
    from loaders.pipeline import model_fn, n2g_config, n2g_substitutes

    torch.set_num_threads(args.threads)
    loaded, fast = load_model(), load_model(dtype="bfloat16")
    windows = bench_n2g.corpus_windows(loaded.tokenizer, args.contexts, args.length, args.seed)
    t = time.perf_counter()
    examples = top_examples(loaded, windows, args.top)
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        examples = {k: v for k, v in examples.items() if k[0] % n == i}
    cfg = n2g_config(True)
    whole = plan_sweep(examples, cfg, 1)
    per_neuron = sum(len(v) for part in whole.parts for v in part.values()) / len(examples)
    print(f"{len(examples)} neurons, top {args.top} of {len(windows)} x {args.length} tokens "
          f"({time.perf_counter() - t:.0f} s); {per_neuron:.2f} training examples fitted per neuron, "
          f"{len(whole.parts)} distinct windows", flush=True)
    rng = np.random.default_rng(args.seed)
    sample = {tuple(windows[w]) for w in rng.choice(len(windows), args.sample, replace=False)}
    plan = plan_sweep(examples, cfg, len(sample), sample)
    keys = sorted(plan.last)
    items = {k: sum(len(part.get(k, [])) for part in plan.parts) for k in keys}
    subs, mask = n2g_substitutes(loaded, fast)
    fn = model_fn(loaded, fast)
    base_keys = sorted(keys[j] for j in rng.permutation(len(keys))[:args.baseline_neurons])
    kw = dict(pad_token=mask, substitutes=subs, config=cfg, contexts=sample, contexts_per_block=len(sample))
    runs: dict[str, tuple[float, LayerStats, dict, int]] = {}
    configs = {"sweep": cfg} | {f"sweep {spec}": dataclasses.replace(cfg, **bench_n2g.config_fields(spec.split(","), cfg))
                                for spec in args.compare}
    for path in (["groups"] if base_keys else []) + list(configs):
        stats = LayerStats()
        c = time.process_time()
        got: dict = {}
        if path in configs:
            got = sweep_all(fn, {k: examples[k] for k in keys}, stats=stats, **dict(kw, config=configs[path]))
        else:
            for s in range(0, len(base_keys), args.group):
                got.update(sweep_all(fn, {k: examples[k] for k in base_keys[s:s + args.group]}, stats=stats, **kw))
        cpu = time.process_time() - c
        n_items = sum(items[k] for k in got)
        runs[path] = (cpu, stats, got, n_items)
        print(f"{path}: {len(got)} neurons, {n_items} examples in {cpu:.1f} CPU s = {1000 * cpu / n_items:.1f} CPU ms "
              f"per example, ~{n_items / cpu / per_neuron:.3f} neurons per CPU second; tokens asked {stats.tokens_asked}, "
              f"run {stats.tokens_run} ({stats.tokens_run / n_items:.0f} per example); by stage "
              + ", ".join(f"{k} {v[1]:.0f} tok {v[2]:.0f} s" for k, v in sorted(stats.by_stage.items())), flush=True)
        done = [r for r in got.values() if getattr(r, "trace", None) is not None]
        if done:
            rows, again = sum(r.trace.masked_rows for r in done), sum(r.trace.rechecked_rows for r in done)
            print(f"  masking rows {rows}, rechecked in float32 {again} ({100 * again / max(rows, 1):.1f}%)", flush=True)

    def graph(r):
        d = r.model.to_dict()
        for n in d["graph"]["nodes"]:
            n.pop("activation", None)
        return d

    def compare(a: str, b: str, on: list, note: str) -> None:
        (ca, _, ra, ia), (cb, _, rb, ib) = runs[a], runs[b]
        print(f"{b} / {a}: {(ib / cb) / (ia / ca):.2f}x examples per CPU second", flush=True)
        same = sum(graph(ra[k]) == graph(rb[k]) for k in on)
        f1 = [((ra[k].scores.get("firing") or {}).get("f1"), (rb[k].scores.get("firing") or {}).get("f1")) for k in on]
        f1 = [(x, y) for x, y in f1 if x is not None and y is not None]
        d = np.array([y - x for x, y in f1])
        boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(10000)] if len(d) else [0.0]
        print(f"{len(on)} neurons: identical graphs {same}/{len(on)} ({note}); held-out firing F1 of the partial "
              f"tries: {a} {np.mean([x for x, _ in f1]):.3f}, {b} {np.mean([y for _, y in f1]):.3f}, paired "
              f"{d.mean():+.3f} [{np.percentile(boot, 2.5):+.3f}, {np.percentile(boot, 97.5):+.3f}] over {len(d)} neurons",
              flush=True)

    if base_keys:
        compare("groups", "sweep", base_keys, "others differ by bfloat16 rounding in other batches")
    for path in list(configs)[1:]:
        fitted = sorted(k for k in set(runs["sweep"][2]) & set(runs[path][2])
                        if not isinstance(runs["sweep"][2][k], Exception) and not isinstance(runs[path][2][k], Exception))
        compare(path, "sweep", fitted, f"the pipeline's settings vs {path.split(' ', 1)[1]}")


if __name__ == "__main__":
    main()
