"""Restart benchmark: what the store's repairs cost after a compaction, on a demo-shaped graph.

A graph with the demo's neurons (30 x 1536) and vocabulary-sized tokens plus composition edges
is compacted (its AOF becomes an RDB image) and the server restarted: the baseline is the
server's own load (first PING answered), the measured part is the range-index rebuild that
``EmbeddedFalkorDB.start`` adds (see embedded.py). Then the read replica: its sync, its own
rebuild, and the first read-only query. Ratios are against the load measured in the same run.

    python bench/bench_restart.py [--layers 30 --d-mlp 1536 --tokens 49152 --edges 500000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_load import edge_rows, prepare  # noqa: E402

from neurograph.config import Settings  # noqa: E402
from neurograph.store import EmbeddedFalkorDB, open_store  # noqa: E402
from neurograph.store.embedded import _ping, rebuild_range_indexes  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--d-mlp", type=int, default=1536)
    ap.add_argument("--tokens", type=int, default=49152)
    ap.add_argument("--edges", type=int, default=500_000)
    a = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ng-bench-restart-"))
    server = EmbeddedFalkorDB(data)
    settings = Settings(data_dir=data, graph="g")
    store = await open_store(settings)
    try:
        await prepare(store, "m", a.layers, a.d_mlp)
        await store.write("upsert_tokens", [{"key": f"m/t/{i}", "model": "m", "id": i, "text": f"t{i}"}
                                            for i in range(a.tokens)], batch_size=5000)
        await store.write("upsert_composes", edge_rows("m", a.layers, a.d_mlp, a.edges, 0), batch_size=5000)
        await store.compact()
        client = server.client()
        while client.info("persistence")["aof_rewrite_in_progress"]:
            await asyncio.sleep(0.1)
        await store.close()
        server.stop()

        # the server's own start and load, then the rebuild start() adds
        t0 = time.perf_counter()
        real_after_start, server._after_start = server._after_start, lambda: None
        server.start()
        load = time.perf_counter() - t0
        wrong = client.execute_command("GRAPH.RO_QUERY", "g", "MATCH (n:Neuron) WHERE n.layer = 0 RETURN count(n)")[1]
        t1 = time.perf_counter()
        labels = rebuild_range_indexes(server.client())
        rebuild = time.perf_counter() - t1
        right = client.execute_command("GRAPH.RO_QUERY", "g", "MATCH (n:Neuron) WHERE n.layer = 0 RETURN count(n)")[1]
        server._after_start = real_after_start

        store = await open_store(settings)
        t2 = time.perf_counter()
        await store.read_only("RETURN 1 AS one")  # starts the replica: sync, rebuild
        replica = time.perf_counter() - t2
        t3 = time.perf_counter()
        rows, _ = await store.read_only("MATCH (n:Neuron) WHERE n.layer = 0 RETURN count(n) AS n")
        query = time.perf_counter() - t3
        print(f"graph: {a.layers * a.d_mlp:,} neurons, {a.tokens:,} tokens, {a.edges:,} edges")
        print(f"layer-0 neurons by index after the load: {wrong[0][0]} (defect), after the rebuild: {right[0][0]}; "
              f"on the replica: {rows[0]['n']}")
        print(f"load (baseline) {load:.2f} s; rebuild of {labels} labels {rebuild:.2f} s (ratio {rebuild / load:.2f}); "
              f"replica start + sync + rebuild {replica:.2f} s ({replica / load:.2f}); first replica query "
              f"{query * 1000:.1f} ms")
    finally:
        await store.close()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
