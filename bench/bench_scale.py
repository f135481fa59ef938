"""Scale: load time and neuron-page latency as the graph grows (1x, 10x, 100x).

Synthetic graphs with every node and edge kind (``loaders.synthetic``) at growing neuron
counts; for each: load time, edges/s, and the p50/p99 latency of the web UI's neuron-page
GraphQL query (``graphql/neuron.graphql``) on random neurons. Ratios are against the 1x
graph measured in the same run, so the cost curve is visible on a noisy machine.

    python bench/bench_scale.py                       # 1x, 10x  (base 1,229 neurons ~ GPT-2 small / 30)
    python bench/bench_scale.py --scales 1 10 100     # ... up to 122,880 neurons
    python bench/bench_scale.py --preset gpt2-small   # 12 x 3,072 = 36,864 neurons, one size
    python bench/bench_scale.py --preset gpt2-xl      # 48 x 6,400 = 307,200 neurons (long)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders.synthetic import write_synthetic_graph  # noqa: E402
from neurograph.api.app import create_app  # noqa: E402
from neurograph.config import Settings  # noqa: E402
from neurograph.store import EmbeddedFalkorDB, open_store  # noqa: E402

PRESETS = {"gpt2-small": (12, 3072, 12, 50257), "gpt2-xl": (48, 6400, 25, 50257)}
NEURON_QUERY = (ROOT / "graphql" / "neuron.graphql").read_text()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def measure(data: Path, name: str, n_layers: int, d_mlp: int, n_heads: int, d_vocab: int,
                  k: int, requests: int) -> dict:
    settings = Settings(data_dir=data, graph=name)
    store = await open_store(settings)
    await store.clear()
    t0 = time.perf_counter()
    await write_synthetic_graph(store, "synth", n_layers=n_layers, d_mlp=d_mlp, n_heads=n_heads,
                                d_vocab=d_vocab, k=k, n_examples=2, progress=True)
    load_s = time.perf_counter() - t0
    nodes = (await store.run("MATCH (n) RETURN count(n) AS n"))[0]["n"]
    edges = (await store.run("MATCH ()-[e]->() RETURN count(e) AS n"))[0]["n"]
    app = create_app(settings, store=store, web_dir=None)
    rng = random.Random(0)
    lat: list[float] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for i in range(requests + 5):
            v = {"model": "synth", "layer": rng.randrange(n_layers), "index": rng.randrange(d_mlp)}
            t = time.perf_counter()
            r = await client.post("/graphql", json={"query": NEURON_QUERY, "variables": v})
            dt = time.perf_counter() - t
            body = r.json()
            assert r.status_code == 200 and not body.get("errors") and body["data"]["neuron"], body
            if i >= 5:  # warm-up excluded
                lat.append(dt * 1000)
    await store.clear()
    await store.close()
    return {"neurons": n_layers * d_mlp, "nodes": nodes, "edges": edges, "load_s": load_s,
            "p50": statistics.median(lat), "p99": pct(lat, 99)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--base-layers", type=int, default=4)
    ap.add_argument("--base-d-mlp", type=int, default=307)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--k", type=int, default=5, help="edges per neuron and kind")
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ng-bench-scale-"))
    server = EmbeddedFalkorDB(data)
    try:
        if a.preset:
            L, D, H, V = PRESETS[a.preset]
            sizes = [(a.preset, L, D, H, V)]
        else:
            sizes = [(f"{s}x", a.base_layers, a.base_d_mlp * s, 4, 2000) for s in a.scales]
        results = []
        for label, L, D, H, V in sizes:
            r = await measure(data, f"scale_{label}", L, D, H, V, a.k, a.requests)
            results.append((label, r))
            print(f"{label:>10}: {r['neurons']:>8,} neurons {r['nodes']:>9,} nodes {r['edges']:>10,} edges | "
                  f"load {r['load_s']:7.1f} s ({r['edges'] / r['load_s']:8,.0f} edges/s) | "
                  f"neuron page p50 {r['p50']:6.1f} ms p99 {r['p99']:6.1f} ms", flush=True)
        base = results[0][1]
        for label, r in results[1:]:
            print(f"{label} vs {results[0][0]}: size x{r['edges'] / base['edges']:.1f}, load time "
                  f"x{r['load_s'] / base['load_s']:.1f}, page p50 x{r['p50'] / base['p50']:.2f}, "
                  f"p99 x{r['p99'] / base['p99']:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
