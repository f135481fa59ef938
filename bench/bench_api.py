"""API benchmark: the web UI's neuron-page GraphQL query vs the same response as a static JSON
file, served by the same uvicorn process on 127.0.0.1, under the same concurrent load.

The static file is the ceiling (HTTP + JSON bytes, no database). The query is measured three
ways, each against the static file of the same run:

- same neuron: every request the same (the in-memory tier of the response cache);
- distinct neurons, pre-rendered: every request another neuron, with the variables the UI
  sends, after `neurograph pages` made every neuron's page (the on-disk tier): what a
  researcher going from neuron to neuron gets;
- distinct neurons, resolved live: the same operation with variables no page was made for
  (``first: 19``), so every page is resolved from the graph (DataLoaders, FalkorDB, Strawberry).

Each run also prints the CPU time per request of the API process, of FalkorDB and of this
client (Linux): on a shared machine throughput follows whoever else is busy, CPU per request
much less so.

The load comes from a minimal keep-alive HTTP/1.1 client (one connection per concurrent
client, the request bytes built beforehand), so the client costs a small fraction of what the
server spends even on the static file: a heavier client (httpx costs ~1.5 ms per request)
would cap the static side first and flatter the ratio.

    python bench/bench_api.py                               # 12 x 512 synthetic model
    python bench/bench_api.py --layers 12 --d-mlp 3072      # GPT-2-small shape
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurograph.config import Settings  # noqa: E402
from neurograph.api.pages import neuron_page_variables  # noqa: E402
from neurograph.store import EmbeddedFalkorDB  # noqa: E402

QUERY = (ROOT / "graphql" / "neuron_page.graphql").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(args: argparse.Namespace) -> None:
    """The server process: the real app plus one static route with the recorded response, both
    on the same uvicorn (its default loop and HTTP parser: uvloop and httptools when installed)."""
    import uvicorn
    from starlette.responses import FileResponse
    from starlette.routing import Route

    from neurograph.api import create_app

    settings = Settings(data_dir=Path(args.data_dir), graph=args.graph)
    app = create_app(settings, web_dir=None)
    static = Path(args.static)
    app.router.routes.insert(0, Route("/bench/static.json", lambda request: FileResponse(static)))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                loop=args.loop, http=args.http)


async def build(settings: Settings, args: argparse.Namespace) -> None:
    from loaders.synthetic import write_synthetic_graph
    from neurograph.store import open_store

    from neurograph.api.app import render_pages

    store = await open_store(settings)
    try:
        if args.reuse and await store.run("MATCH (m:Model {key: 'bench'}) RETURN m.key AS k"):
            print("graph: reusing the graph already in", settings.data_dir)
        else:
            t = time.perf_counter()
            info = await write_synthetic_graph(store, "bench", n_layers=args.layers, d_mlp=args.d_mlp, n_heads=8,
                                               d_vocab=2000, k=args.k, n_examples=5, progress=True)
            print(f"graph: {info.n_layers} x {info.d_mlp} neurons built in {time.perf_counter() - t:.1f} s")
        pages = await render_pages(store, settings, "bench", progress=True)
        print(f"pages: {pages.rendered} rendered ({pages.kept} kept from before) in {pages.seconds:.1f} s, "
              f"{pages.pages_per_second:.0f} pages/s, {pages.bytes_rendered / 2**20:.1f} MiB")
    finally:
        await store.close()


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads whole replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, raw: bytes) -> bytes:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = None
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length is None:
            raise RuntimeError(f"no content-length in the reply: {head!r}")
        body = await self.reader.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"HTTP {status.decode()}: {body[:300]!r}")
        return body

    def close(self) -> None:
        self.writer.close()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()


def post_json(path: str, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def load(conns: list[Connection], requests: list[bytes], *, seconds: float) -> tuple[list[float], float]:
    """Send ``requests`` (or until ``seconds`` pass) over the connections, one worker each."""
    latencies: list[float] = []
    issued = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal issued
        while issued < len(requests) and time.perf_counter() < deadline:
            raw = requests[issued]
            issued += 1
            t = time.perf_counter()
            await conn.request(raw)
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return latencies, time.perf_counter() - start


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (0 where /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return 0.0


class CpuMeter:
    """CPU seconds spent by named processes between two readings."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.last = self.read()

    def read(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def since(self) -> dict[str, float]:
        now = self.read()
        spent = {name: now[name] - self.last[name] for name in now}
        self.last = now
        return spent


def summary(name: str, lat: list[float], wall: float, cpu: dict[str, float]) -> float:
    """Print p50 / p99 latency, throughput and CPU ms per request; returns requests per second."""
    q = statistics.quantiles(lat, n=100)
    rps = len(lat) / wall
    per = "  ".join(f"{k} {v / len(lat) * 1000:5.2f}" for k, v in cpu.items())
    print(f"{name:<22} n={len(lat):>5}  p50={q[49] * 1000:7.2f} ms  p99={q[98] * 1000:7.2f} ms  {rps:8.1f} req/s"
          f"   CPU ms/request: {per}")
    return rps


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="ng-bench-"))
    settings = Settings(data_dir=data_dir, graph="bench_api")
    await build(settings, args)
    port = free_port()
    static = data_dir / "neuron_page.json"
    url = f"http://127.0.0.1:{port}"
    static.write_text("{}")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", str(data_dir),
                             "--graph", settings.graph, "--static", str(static), "--loop", args.loop,
                             "--http", args.http], env={**os.environ})
    conns: list[Connection] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            for _ in range(200):
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise SystemExit("server did not start")
            n_neurons = args.layers * args.d_mlp

            def variables(i: int, live: bool = False) -> dict:
                j = (i * 7919) % n_neurons  # different neurons in turn (7919 is prime to the count)
                v = neuron_page_variables("bench", j // args.d_mlp, j % args.d_mlp)  # as the UI sends
                if live:
                    v["first"] = 19  # no page was made for these variables: resolved from the graph
                return v

            page = await c.post("/graphql", json={"query": QUERY, "variables": variables(0)})
            body = page.json()
            assert not body.get("errors"), body["errors"]
            static.write_bytes(page.content)  # the very same bytes, served statically
        import redis.utils

        conns = [await Connection.open(port) for _ in range(args.concurrency)]
        # Both sides answer with the same bytes (the same neuron's page).
        assert await conns[0].request(get("/bench/static.json")) == page.content
        hot = post_json("/graphql", {"query": QUERY, "variables": variables(0)})
        assert await conns[0].request(hot) == page.content
        parser = "hiredis (C)" if redis.utils.HIREDIS_AVAILABLE else "pure Python (pip install hiredis)"
        print(f"redis parser: {parser}; server loop {args.loop}, http {args.http} "
              "(auto: uvloop and httptools when installed)")
        print(f"neuron page: {len(page.content)} bytes; {args.concurrency} concurrent clients, "
              f"at most {args.count} requests or {args.seconds} s each side")
        if args.count + 100 > n_neurons:
            print(f"note: {n_neurons} neurons for {args.count} + 100 distinct requests: repeats come from the "
                  "response cache (use a larger graph or fewer requests)")

        flat = [get("/bench/static.json")] * args.count
        same = [hot] * args.count
        kept = [post_json("/graphql", {"query": QUERY, "variables": variables(i)}) for i in range(1, args.count + 1)]
        live = [post_json("/graphql", {"query": QUERY, "variables": variables(i, live=True)})
                for i in range(1, args.count + 1)]
        await load(conns, flat[:200], seconds=5)  # warm up
        await load(conns, same[:200], seconds=5)
        await load(conns, [post_json("/graphql", {"query": QUERY, "variables": variables(-i, live=True)})
                           for i in range(1, 101)], seconds=5)

        meter = CpuMeter({"api": proc.pid, "falkordb": EmbeddedFalkorDB(data_dir).pid(), "client": os.getpid()})
        static_run = await load(conns, flat, seconds=args.seconds)
        rps_s = summary("static JSON file", *static_run, cpu_s := meter.since())
        rps_h = summary("GraphQL, same neuron", *await load(conns, same, seconds=args.seconds), meter.since())
        rps_k = summary("GraphQL, pre-rendered", *await load(conns, kept, seconds=args.seconds), meter.since())
        distinct_run = await load(conns, live, seconds=args.seconds)
        rps_c = summary("GraphQL, resolved live", *distinct_run, cpu_c := meter.since())
        print(f"ratio GraphQL / static throughput: distinct neurons, pre-rendered pages {rps_k / rps_s:.2f} "
              f"(goal >= 0.5); same neuron (in memory) {rps_h / rps_s:.2f}; "
              f"distinct neurons resolved live from the graph {rps_c / rps_s:.2f}")
        # What the throughput ratio tends to where the three processes only compete with each other.
        cpu_ratio = (sum(cpu_s.values()) / len(static_run[0])) / max(sum(cpu_c.values()) / len(distinct_run[0]), 1e-9)
        print(f"ratio of CPU time per request (api + falkordb + client), static / resolved live: {cpu_ratio:.2f}")
        print(json.dumps({"static_rps": round(rps_s, 1), "graphql_same_rps": round(rps_h, 1),
                          "graphql_prerendered_rps": round(rps_k, 1), "graphql_live_rps": round(rps_c, 1),
                          "ratio_same": round(rps_h / rps_s, 3), "ratio_prerendered": round(rps_k / rps_s, 3),
                          "ratio_live": round(rps_c / rps_s, 3), "cpu_ratio_live": round(cpu_ratio, 3),
                          "api_cpu_ms_static": round(cpu_s["api"] / len(static_run[0]) * 1000, 2),
                          "api_cpu_ms_live": round(cpu_c["api"] / len(distinct_run[0]) * 1000, 2),
                          "client_cpu_ms_static": round(cpu_s["client"] / len(static_run[0]) * 1000, 2)}))
    finally:
        for conn in conns:
            conn.close()
        proc.terminate()
        proc.wait(10)
        if not args.data_dir:  # ours: stop the embedded FalkorDB we started
            EmbeddedFalkorDB(data_dir).stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--d-mlp", type=int, default=512)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"], help="the server's event loop")
    p.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"], help="the server's HTTP parser")
    p.add_argument("--data-dir", help="keep the database here (default: a fresh temporary folder)")
    p.add_argument("--reuse", action="store_true", help="skip the build when --data-dir already has the graph")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--graph", help=argparse.SUPPRESS)
    p.add_argument("--static", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a)
    else:
        try:  # the client's own loop: uvloop keeps its CPU per request low
            import uvloop
            uvloop.run(main(a))
        except ImportError:
            asyncio.run(main(a))
