"""Load test: sustained concurrent GraphQL traffic against ``neurograph serve`` (loopback only).

Starts the real CLI server (uvicorn) on 127.0.0.1 over a synthetic graph, then runs
``--clients`` concurrent clients for ``--seconds`` seconds (bounded: it stops by itself) with a
mix of the UI's operations: neuron page, neighbourhood (depth 2), a page of neurons with
edges, token search. Reports throughput, p50/p99 per operation, errors, and the peak memory
of the API process and of the FalkorDB server. The baseline is ``/healthz`` (one store ping)
under the same load, so the ratio shows what the GraphQL work costs.

    python bench/bench_serve_load.py --clients 16 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders.synthetic import write_synthetic_graph  # noqa: E402
from neurograph.config import Settings  # noqa: E402
from neurograph.store import EmbeddedFalkorDB, open_store  # noqa: E402

OPS = {name: (ROOT / "graphql" / f"{name}.graphql").read_text()
       for name in ("neuron", "neighborhood", "neurons_page", "search_tokens")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def variables(op: str, rng: random.Random, n_layers: int, d_mlp: int) -> dict:
    layer, index = rng.randrange(n_layers), rng.randrange(d_mlp)
    if op == "neuron":
        return {"model": "synth", "layer": layer, "index": index}
    if op == "neighborhood":
        return {"id": f"synth/{layer}/{index}", "depth": 2, "perNode": 5}
    if op == "neurons_page":
        return {"model": "synth", "layer": layer, "first": 20}
    return {"model": "synth", "any": [" the"], "first": 20}


async def run_load(base: str, clients: int, seconds: float, ops: list[str], n_layers: int,
                   d_mlp: int) -> tuple[dict[str, list[float]], dict[str, int], float]:
    lat: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    deadline = time.perf_counter() + seconds

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(i)
        while time.perf_counter() < deadline:
            op = ops[rng.randrange(len(ops))]
            t = time.perf_counter()
            try:
                if op == "healthz":
                    r = await client.get("/healthz")
                    ok = r.status_code == 200
                else:
                    r = await client.post("/graphql", json={"query": OPS[op],
                                                            "variables": variables(op, rng, n_layers, d_mlp)})
                    ok = r.status_code == 200 and not r.json().get("errors")
            except httpx.HTTPError:
                ok = False
            (lat[op].append((time.perf_counter() - t) * 1000) if ok else None)
            if not ok:
                errors[op] += 1

    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(i, client) for i in range(clients)))
    return lat, errors, time.perf_counter() - t0


def report(title: str, lat: dict[str, list[float]], errors: dict[str, int], wall: float) -> float:
    total = sum(len(v) for v in lat.values())
    print(f"{title}: {total:,} ok, {sum(errors.values())} errors in {wall:.1f} s -> {total / wall:,.0f} req/s")
    for op, xs in sorted(lat.items()):
        xs.sort()
        print(f"  {op:>14}: n={len(xs):6,}  p50 {statistics.median(xs):7.1f} ms  "
              f"p99 {xs[int(0.99 * (len(xs) - 1))]:7.1f} ms  errors {errors.get(op, 0)}")
    return total / wall


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-mlp", type=int, default=512)
    a = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ng-bench-serve-"))
    db = EmbeddedFalkorDB(data)
    settings = Settings(data_dir=data, graph="load")
    store = await open_store(settings)
    await write_synthetic_graph(store, "synth", n_layers=a.layers, d_mlp=a.d_mlp, n_heads=4, d_vocab=500, k=5)
    await store.close()
    port = free_port()
    env = {**os.environ, "NEUROGRAPH_DATA_DIR": str(data), "NEUROGRAPH_GRAPH": "load"}
    server = subprocess.Popen([sys.executable, "-m", "neurograph.cli", "serve", "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as c:
            for _ in range(300):
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("server did not come up")
        print(f"graph: {a.layers * a.d_mlp:,} neurons; {a.clients} clients for {a.seconds:.0f} s each phase")
        base_tput = report("baseline /healthz", *await run_load(base, a.clients, a.seconds / 2, ["healthz"],
                                                                 a.layers, a.d_mlp))
        tput = report("GraphQL mix", *await run_load(base, a.clients, a.seconds, sorted(OPS), a.layers, a.d_mlp))
        print(f"ratio GraphQL mix / healthz throughput: {tput / base_tput:.3f}")
        print(f"peak memory: API process {peak_rss_mib(server.pid):,.0f} MiB, "
              f"FalkorDB {peak_rss_mib(db.pid() or 0):,.0f} MiB")
    finally:
        server.terminate()
        server.wait(10)
        db.stop()


if __name__ == "__main__":
    asyncio.run(main())
