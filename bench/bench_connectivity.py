"""Time and peak resident memory of ``build_connectivity`` (the build's ``connectivity``
step), per kind and per phase: compute, turning results into rows, writing them.

Runs against a fresh embedded FalkorDB (its memory is its own process's, not counted here).
Each phase's peak is the process's peak RSS (VmHWM) while that phase ran, in MiB, absolute
(it includes the model and the weights, printed first as ``base``). ``step`` is the peak over
the whole call, as ``neurograph build`` reports it.

    python bench/bench_connectivity.py                                  # tiny random model
    python bench/bench_connectivity.py --model smollm2-135m --corr-tokens 4096 --k 5   # demo build's settings
    python bench/bench_connectivity.py --model smollm2-135m --kinds correlation --corr-tokens 4096
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = {  # function in loaders.connectivity -> phase name
    "neuron_composition": "compute", "head_composition": "compute", "token_effects": "compute",
    "correlate": "compute", "composition_rows": "rows", "composition_props": "rows", "head_rows": "rows",
    "token_rows": "rows", "correlation_rows": "rows", "_write": "write",
}


class Phases:
    """Wraps loaders.connectivity's functions: the peak RSS and seconds of each call, by name.
    The peak window is reset at each call's start; the step's own peak is kept aside."""

    def __init__(self) -> None:
        self.peak: dict[str, float] = defaultdict(float)
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.step = 0.0

    def _enter(self) -> None:
        from loaders.memory import peak_rss_mb, reset_peak
        self.step = max(self.step, peak_rss_mb() or 0)
        reset_peak()

    def _leave(self, name: str, t: float, c: float) -> None:
        from loaders.memory import peak_rss_mb
        p = peak_rss_mb() or 0
        self.peak[name] = max(self.peak[name], p)
        self.step = max(self.step, p)
        self.seconds[name] += time.perf_counter() - t
        self.cpu[name] += time.process_time() - c

    def install(self, module) -> None:
        import inspect
        for fn_name in PHASES:
            fn = getattr(module, fn_name)
            if inspect.iscoroutinefunction(fn):
                async def wrapped(*a, _fn=fn, _n=fn_name, **kw):
                    self._enter()
                    t, c = time.perf_counter(), time.process_time()
                    try:
                        return await _fn(*a, **kw)
                    finally:
                        self._leave(f"write {a[1]}", t, c)
            else:
                def wrapped(*a, _fn=fn, _n=fn_name, **kw):
                    self._enter()
                    t, c = time.perf_counter(), time.process_time()
                    try:
                        return _fn(*a, **kw)
                    finally:
                        self._leave(_n, t, c)
            setattr(module, fn_name, wrapped)


async def run(a: argparse.Namespace) -> None:
    import torch

    import loaders.connectivity as conn
    from loaders.memory import peak_rss_mb, release_memory, reset_peak
    from loaders.model import load_model, tiny_model
    from loaders.weights import model_weights
    from neurograph.config import Settings
    from neurograph.store import EmbeddedFalkorDB, open_store

    torch.set_num_threads(a.threads)
    model = (tiny_model(seed=0, n_layers=4, d_model=128, d_mlp=512, n_heads=4)
             if a.model == "tiny" else load_model(a.model))
    contexts = None
    if "correlation" in a.kinds:
        from loaders.corpus import corpus_contexts
        contexts = corpus_contexts(model, "default", a.corr_tokens, a.ctx_len).tokens
    w = model_weights(model)
    release_memory()
    base = peak_rss_mb()
    info = model.info
    print(f"{model.name}: {info.n_layers} x {info.d_mlp} = {info.n_layers * info.d_mlp} neurons, vocab {info.d_vocab}; "
          f"kinds {' '.join(a.kinds)}; k {a.k}, tokens {2 * a.k} per neuron; "
          f"correlation over {0 if contexts is None else contexts.numel()} tokens; "
          f"{a.threads} thread(s); base RSS {base:.0f} MiB (model + weights)")

    phases = Phases()
    phases.install(conn)
    with tempfile.TemporaryDirectory(prefix="bench-conn-") as tmp:
        server = EmbeddedFalkorDB(Path(tmp))
        server.start()
        try:
            store = await open_store(Settings(data_dir=Path(tmp), graph=f"b_{uuid.uuid4().hex[:8]}"))
            try:
                reset_peak()
                t, c = time.perf_counter(), time.process_time()
                rep = await conn.build_connectivity(
                    store, model, contexts, kinds=a.kinds, k=a.k, k_heads=a.k, k_tokens=2 * a.k,
                    weights=w, batch_size=a.batch_size, corr_memory_mb=a.corr_memory_mb, progress=False)
                total, cpu = time.perf_counter() - t, time.process_time() - c
                step = max(phases.step, peak_rss_mb() or 0)
            finally:
                await store.close()
        finally:
            server.stop()
    print(f"{'phase':34s} {'seconds':>8s} {'CPU s':>8s} {'peak MiB':>9s}")
    for name in phases.peak:
        print(f"{name:34s} {phases.seconds[name]:8.1f} {phases.cpu[name]:8.1f} {phases.peak[name]:9.0f}")
    for kind, (compute, write) in rep["times"].items():
        print(f"{kind:12s} compute+rows {compute:7.1f} s   write {write:7.1f} s")
    print(f"step: {total:.1f} s ({cpu:.1f} s CPU), peak RSS {step:.0f} MiB (base {base:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="'tiny' (random, offline) or a load_model name")
    ap.add_argument("--kinds", nargs="+", default=["composition", "heads", "tokens", "correlation"])
    ap.add_argument("--k", type=int, default=5, help="edges per neuron and list (the demo build's --edge-k)")
    ap.add_argument("--corr-tokens", type=int, default=4096)
    ap.add_argument("--ctx-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--corr-memory-mb", type=float, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
