"""kill -9 of the embedded FalkorDB under a running `neurograph serve`: it is back within
seconds by itself, pre-rendered pages are served throughout, the renderer resumes, nothing is
lost. A real server process, a real FalkorDB, real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from loaders.synthetic import write_synthetic_graph
from neurograph.config import Settings
from neurograph.store import EmbeddedFalkorDB, open_store

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "graphql" / "neuron_page.graphql").read_text()
MODEL, LAYERS, D_MLP = "sv", 4, 48


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_kill_9_under_a_running_server(tmp_path):
    data = tmp_path / "db"
    settings = Settings(data_dir=data, graph="g")
    store = await open_store(settings)
    await write_synthetic_graph(store, MODEL, n_layers=LAYERS, d_mlp=D_MLP, n_heads=0, d_vocab=50, k=2, n_examples=1)
    count = "MATCH (n) OPTIONAL MATCH (n)-[e]->() RETURN count(DISTINCT n) AS n, count(e) AS e"
    before = await store.run(count)
    await store.close()
    server = EmbeddedFalkorDB(data)

    port = _port()
    env = {**os.environ, "NEUROGRAPH_DATA_DIR": str(data), "NEUROGRAPH_GRAPH": "g"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from neurograph.cli import main; sys.exit(main())",
                             "serve", "--pages", "--port", str(port), "--log-level", "info"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, "")), daemon=True).start()

    def wait_for(pred, what: str, timeout: float = 90.0) -> float:
        t0 = time.monotonic()
        while not pred():
            assert proc.poll() is None, "".join(log)
            assert time.monotonic() - t0 < timeout, f"no {what} within {timeout} s:\n" + "".join(log)
            time.sleep(0.05)
        return time.monotonic() - t0

    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            def healthz() -> dict:
                try:
                    return http.get("/healthz").json()
                except httpx.HTTPError:
                    return {}

            def page(layer: int, index: int) -> httpx.Response:
                return http.post("/graphql", json={"query": PAGE, "variables": {"model": MODEL, "layer": layer,
                                                                                 "index": index}})

            wait_for(lambda: healthz().get("status") == "ok", "healthy server")
            # kill while the renderer works: it pauses, then resumes where it stopped
            wait_for(lambda: any("pre-rendering the neuron pages" in line for line in log), "renderer start")
            server.kill()
            wait_for(lambda: any("neuron pages of sv:" in line for line in log), "renderer finishing", 180)
            assert any("stopped answering" in line for line in log), "".join(log)

            expected = {(l, i): page(l, i).json() for l in range(LAYERS) for i in (0, 7, D_MLP - 1)}
            assert all("errors" not in v for v in expected.values())

            server.kill()  # and again, with every page made: each is served throughout
            t0, stale_seen, states = time.monotonic(), 0, set()
            while True:
                for (l, i), want in expected.items():
                    r = page(l, i)
                    assert r.status_code == 200 and r.json() == want
                    stale_seen += r.headers.get("x-neurograph-stale") == "store-unavailable"
                h = healthz()
                states.add(h.get("status"))
                if h.get("status") == "ok" and server.is_running():
                    break
                assert time.monotonic() - t0 < 60, "".join(log)
            recovery = time.monotonic() - t0
            assert recovery < 30, recovery
            # nothing acknowledged is lost, and queries not kept anywhere are answered live again
            r = http.post("/graphql", json={"query": "{ models { name } }"}).json()
            assert r == {"data": {"models": [{"name": MODEL}]}}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = await open_store(settings)
    assert await store.run(count) == before
    await store.close()
    server.stop()
    print(f"recovered in {recovery:.2f} s; {stale_seen} stale answers served; states seen: {states}")
    print("".join(line for line in log if "HTTP" not in line))
