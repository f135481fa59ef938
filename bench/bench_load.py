"""Load benchmark: edges/s into the embedded store vs the raw FalkorDB client.

Both sides send the same ``UNWIND $rows … MERGE`` text in the same batches to the same
server; the ratio shows what NeuroGraph's writer (batching, retries, bookkeeping) costs.

    python bench/bench_load.py --edges 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neurograph.config import Settings  # noqa: E402
from neurograph.domain import ModelInfo, layer_key, neuron_key  # noqa: E402
from neurograph.store import EmbeddedFalkorDB, open_store  # noqa: E402


def edge_rows(model: str, n_layers: int, d_mlp: int, n_edges: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    n = n_layers * d_mlp
    src = rng.integers(0, n, n_edges)
    dst = rng.integers(0, n, n_edges)
    kinds = ("in_in", "in_out", "out_in", "out_out", "virtual")
    kind = rng.integers(0, len(kinds), n_edges)
    w = rng.standard_normal(n_edges).round(4)
    key = lambda i: neuron_key(model, int(i) // d_mlp, int(i) % d_mlp)  # noqa: E731
    return [{"src": key(s), "dst": key(d), "kind": kinds[k], "weight": float(x), "rank": i % 20}
            for i, (s, d, k, x) in enumerate(zip(src, dst, kind, w))]


async def prepare(store, model: str, n_layers: int, d_mlp: int) -> None:
    await store.write("upsert_models", [ModelInfo(model, n_layers, d_mlp).row()])
    await store.write("upsert_layers", [{"key": layer_key(model, l), "model": model, "layer": l,
                                         "n_neurons": d_mlp} for l in range(n_layers)])
    await store.write("upsert_neurons", [
        {"key": neuron_key(model, l, i), "model": model, "layer": l, "index": i,
         "layer_key": layer_key(model, l), "props": {}} for l in range(n_layers) for i in range(d_mlp)],
        batch_size=5000)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d-mlp", type=int, default=3072)
    ap.add_argument("--batch", type=int, default=5000)
    a = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ng-bench-load-"))
    server = EmbeddedFalkorDB(data)
    try:
        ours = await open_store(Settings(data_dir=data, graph="ours"))
        raw_store = await open_store(Settings(data_dir=data, graph="raw"))
        for s in (ours, raw_store):
            await prepare(s, "bench", a.layers, a.d_mlp)
        rows = edge_rows("bench", a.layers, a.d_mlp, a.edges, seed=0)
        text = ours.queries["upsert_composes"].text

        # Baseline: the raw falkordb client, same text, same batches, same server.
        graph = raw_store.graph
        t0 = time.perf_counter()
        for i in range(0, len(rows), a.batch):
            await graph.query(text, {"rows": rows[i:i + a.batch]})
        raw_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        await ours.write("upsert_composes", rows, batch_size=a.batch)
        ours_s = time.perf_counter() - t0

        counts = [(await s.run("MATCH ()-[e:COMPOSES]->() RETURN count(e) AS n"))[0]["n"] for s in (ours, raw_store)]
        assert counts[0] == counts[1], counts
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"edges sent: {len(rows):,}  distinct edges stored: {counts[0]:,}  batch: {a.batch}")
        print(f"raw falkordb client : {raw_s:7.2f} s  {len(rows) / raw_s:12,.0f} edges/s")
        print(f"neurograph store    : {ours_s:7.2f} s  {len(rows) / ours_s:12,.0f} edges/s")
        print(f"ratio (neurograph / raw throughput): {raw_s / ours_s:.3f}   client peak RSS {rss:,.0f} MiB")
        for s in (ours, raw_store):
            await s.clear()
            await s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
