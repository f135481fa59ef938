"""Traversal benchmark on a real graph (the demo's): the web UI's neighbourhood and the neurons
listing, each request about another neuron, against the pre-rendered neuron page in the same run.

Starts ``neurograph``'s app under uvicorn on 127.0.0.1 over an existing data directory (give it
a COPY of the demo's, e.g. ``cp -a /tmp/cc-data /tmp/copy`` without *.sock / *.pid: never a
directory another server uses) and measures, single client (p50 / p99) and at --concurrency
keep-alive clients (req/s, p50, p99, errors):

- neighbourhood at depth 2 and 3 with the variables the UI's neighbourhood view sends by default
  (every edge type ticked, 3 edges per kind and direction, each kind ranked on its own; the
  server's default node budget), through graphql/neighborhood.graphql;
- a page of 50 neurons with their strongest inputs and outputs (graphql/neurons_page.graphql,
  the query a listing uses), each request another page;
- the baseline: the UI's neuron page (graphql/neuron_page.graphql), pre-rendered beforehand for
  the sample's neurons (kept in the on-disk tier, as ``neurograph pages`` does).

No answer cache makes the measured operations trivial: every request is about another neuron
(or page), the server's in-memory answer tier is cut to one entry (so the baseline is served
from disk, as pre-rendered pages are), and the measured requests carry a per-run variable that
the operations ignore but the cache key includes (a rerun misses what the last run kept).
Errors (HTTP status other than 200 or a GraphQL ``errors`` member) are counted, not fatal.

    python bench/bench_traversal.py --data-dir /tmp/copy-of-cc-data
    python bench/bench_traversal.py --data-dir /tmp/copy --seconds 5 --ops depth2 neurons
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import Connection, CpuMeter, free_port, post_json  # noqa: E402
from neurograph.api.ids import encode_cursor  # noqa: E402
from neurograph.api.pages import neuron_page_variables  # noqa: E402
from neurograph.config import Settings  # noqa: E402
from neurograph.store import EmbeddedFalkorDB  # noqa: E402

OPS = {name: (ROOT / "graphql" / f"{name}.graphql").read_text()
       for name in ("neighborhood", "neurons_page", "neuron_page")}
UI_NEIGHBOURHOOD = {"perNode": 3, "perKind": True, "kinds": None, "minWeight": None}  # web/js defaults
RENDER_HEADER = b"x-bench-render"


def serve(args: argparse.Namespace) -> None:
    """The server process: the real app, its in-memory answer tier cut to one entry, in
    ``--processes`` API processes (peers as ``serve --processes`` starts them). Requests with the
    render header are marked as the app's own page renderer's (kept on disk only)."""
    import uvicorn

    from neurograph.api import create_app
    from neurograph.api.cache import RENDERER
    from neurograph.api.processes import Peer, listen

    settings = Settings(data_dir=Path(args.data_dir), graph=args.graph)
    options = {"web_dir": None, "cache_entries": 1}
    # timeout_keep_alive: the load phases' clients wait idle through the single-client ones
    server = {"log_level": "warning", "access_log": False, "timeout_keep_alive": 600}
    sock = listen("127.0.0.1", args.port)
    peers = [Peer(i, sock, settings, app_options=options, server_options=server) for i in range(1, args.serve_processes)]
    app = create_app(settings, peers=peers, **options)

    async def bench_app(scope, receive, send):
        if scope["type"] == "http" and any(k == RENDER_HEADER for k, _ in scope["headers"]):
            scope = scope | {RENDERER: True}
        await app(scope, receive, send)

    uvicorn.Server(uvicorn.Config(bench_app, **server)).run(sockets=[sock])


async def run(conns: list[Connection], requests: list[bytes], seconds: float, port: int,
              clients: int | None = None) -> tuple[list[float], int, float]:
    """Send ``requests`` in turn over the first ``clients`` connections (until ``seconds`` pass):
    latencies, errors, wall. A connection the server drops counts an error and is opened again."""
    lat: list[float] = []
    errors = 0
    sample: list[str] = []  # the first error, to say what went wrong
    issued = 0
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal issued, errors
        while issued < len(requests) and time.perf_counter() < deadline:
            raw = requests[issued]
            issued += 1
            t = time.perf_counter()
            try:
                body = await conns[i].request(raw)
                if b'"errors"' in body:
                    errors += 1
                    sample[:] = sample or [body[:200].decode(errors="replace")]
            except RuntimeError as e:  # a status other than 200
                errors += 1
                sample[:] = sample or [str(e)[:200]]
            except (asyncio.IncompleteReadError, ConnectionError) as e:  # the server dropped the connection
                errors += 1
                sample[:] = sample or [f"connection dropped: {e!r}"[:200]]
                conns[i] = await Connection.open(port)
            lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients or len(conns))))
    if sample:
        print(f"  first error: {sample[0]}")
    return lat, errors, time.perf_counter() - start


def report(name: str, lat: list[float], errors: int, wall: float, cpu: dict[str, float]) -> dict:
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    out = {"n": len(lat), "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
           "rps": round(len(lat) / wall, 1), "errors": errors,
           **{f"{k}_cpu_ms": round(v / len(lat) * 1000, 1) for k, v in cpu.items()}}
    print(f"{name:<34} n={out['n']:>5} p50={out['p50_ms']:8.1f} ms p99={out['p99_ms']:8.1f} ms "
          f"{out['rps']:7.1f} req/s errors={errors:<4} CPU ms/req: "
          + " ".join(f"{k} {v / len(lat) * 1000:.1f}" for k, v in cpu.items()), flush=True)
    return out


def peer_pids(pid: int) -> list[int]:
    """The API processes a server process started (multiprocessing's spawned children)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmd:
            out.append(int(stat.parent.name))
    return sorted(out)


async def measure(args: argparse.Namespace, processes: int) -> dict[str, dict]:
    """Every measurement against a server of ``processes`` API processes."""
    data_dir = Path(args.data_dir)
    settings = Settings(data_dir=data_dir, graph=args.graph or Settings().graph)
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", str(data_dir),
                             "--graph", settings.graph, "--serve-processes", str(processes)])
    conns: list[Connection] = []
    nonce = uuid.uuid4().hex  # ignored by the operations, part of every cache key: a rerun misses
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
            for _ in range(3000):  # the demo's FalkorDB may take minutes to load
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("server did not start")
            for _ in range(600):  # and every API process answers
                pids = {httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60).json()["pid"] for _ in range(20)}
                if len(pids) == processes:
                    break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"{processes} API processes did not all answer")
            models = (await c.post("/graphql", json={"query": "{ models { name nLayers dMlp } }"})).json()
            m = next(x for x in models["data"]["models"] if args.model in (None, x["name"]))
            model, n_layers, d_mlp = m["name"], m["nLayers"], m["dMlp"]
            rng = random.Random(args.seed)  # a fixed sample: the same neurons run after run
            sample = rng.sample(range(n_layers * d_mlp), args.sample)
            coords = [(j // d_mlp, j % d_mlp) for j in sample]
            print(f"\n== {processes} API process(es) ==\nmodel {model}: {n_layers} x {d_mlp} neurons; sample of "
                  f"{len(coords)} (seed {args.seed}); {args.concurrency} clients; at most {args.seconds} s per "
                  "measurement", flush=True)

            # The baseline's pages, made now for the sample (skipped where kept from an earlier run).
            pages = coords[:args.pages]
            t = time.perf_counter()
            for i in range(0, len(pages), 8):
                await asyncio.gather(*(c.post("/graphql", headers={RENDER_HEADER.decode(): "1"}, json={
                    "query": OPS["neuron_page"], "variables": neuron_page_variables(model, *lc)})
                    for lc in pages[i:i + 8]))
            print(f"pre-rendered {len(pages)} neuron pages in {time.perf_counter() - t:.1f} s", flush=True)

        def neighbourhood(depth: int) -> list[bytes]:
            return [post_json("/graphql", {"query": OPS["neighborhood"], "variables": {
                "id": f"{model}/{layer}/{index}", "depth": depth, **UI_NEIGHBOURHOOD, "bench": nonce}})
                for layer, index in coords]

        listing = [post_json("/graphql", {"query": OPS["neurons_page"], "variables": {
            "model": model, "first": 50, "after": encode_cursor(layer, index), "bench": nonce}})
            for layer, index in coords]
        baseline = [post_json("/graphql", {"query": OPS["neuron_page"],
                                           "variables": neuron_page_variables(model, *lc)}) for lc in pages]
        meter = CpuMeter({"api": proc.pid, **{f"api{i}": pid for i, pid in enumerate(peer_pids(proc.pid), 1)},
                          "falkordb": EmbeddedFalkorDB(data_dir).pid()})
        conns = [await Connection.open(port) for _ in range(args.concurrency)]
        results: dict[str, dict] = {}
        # Each operation single-client, then under load; each uses its own slice of the sample,
        # so no neuron is asked twice for the same operation in this run.
        cases = [(name, reqs) for name, reqs, on in (
            ("neighbourhood depth 2", neighbourhood(2), "depth2" in args.ops),
            ("neighbourhood depth 3", neighbourhood(3), "depth3" in args.ops),
            ("neurons page of 50", listing, "neurons" in args.ops)) if on]
        await run(conns, baseline * 2, 3, port, 1)  # warm: connections, the server's first requests
        meter.since()
        results["page single"] = report("pre-rendered neuron page, 1 client", *await run(
            conns, baseline * 100, args.seconds, port, 1), meter.since())
        results["page load"] = report(f"pre-rendered neuron page, {args.concurrency} clients", *await run(
            conns, baseline * 1000, args.seconds, port), meter.since())
        for name, reqs in cases:
            half = len(reqs) // 4
            results[f"{name} single"] = report(f"{name}, 1 client", *await run(
                conns, reqs[:half], args.seconds, port, 1), meter.since())
            results[f"{name} load"] = report(f"{name}, {args.concurrency} clients", *await run(
                conns, reqs[half:], args.seconds, port), meter.since())
        base_p50, base_rps = results["page single"]["p50_ms"], results["page load"]["rps"]
        print("ratios against the pre-rendered neuron page (p50 single client; req/s under load):")
        for name, _ in cases:
            s, ld = results[f"{name} single"], results[f"{name} load"]
            print(f"  {name:<24} p50 x{s['p50_ms'] / base_p50:7.1f}   throughput x{ld['rps'] / base_rps:6.3f}")
        return results
    finally:
        for conn in conns:
            conn.close()
        proc.terminate()
        proc.wait(60)


async def main(args: argparse.Namespace) -> None:
    runs = {p: await measure(args, p) for p in args.processes}
    if len(runs) > 1:
        first = args.processes[0]
        print(f"\nthroughput under load against {first} API process(es), this run:")
        for p in args.processes[1:]:
            for name in runs[p]:
                if name.endswith(" load"):
                    print(f"  {p} processes, {name[:-5]:<24} {runs[p][name]['rps']:7.1f} vs "
                          f"{runs[first][name]['rps']:7.1f} req/s = x{runs[p][name]['rps'] / runs[first][name]['rps']:.2f}")
    print(json.dumps({str(p): r for p, r in runs.items()}))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="a COPY of a built data directory (the demo's)")
    p.add_argument("--graph", help="the graph's name (default: NEUROGRAPH_GRAPH's default)")
    p.add_argument("--model", help="the model (default: the first)")
    p.add_argument("--sample", type=int, default=6000, help="neurons in the fixed random sample")
    p.add_argument("--pages", type=int, default=200, help="neuron pages pre-rendered for the baseline")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--ops", nargs="+", default=["depth2", "depth3", "neurons"], choices=["depth2", "depth3", "neurons"],
                   help="what to measure besides the baseline")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                   help="API processes of the server; each count measured in turn, compared with the first")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-processes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a)
    else:
        asyncio.run(main(a))
