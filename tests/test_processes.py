"""`neurograph serve --processes 2`: two API processes on one port. Each answers the graph and
the model (the owner's worker, over its socket); a peer killed with -9 is started again by the
owner's supervisor; the owner's end takes its peer with it. Real processes, a real FalkorDB, real
HTTP over real connections (a keep-alive connection stays with the process that accepted it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from loaders.model import tiny_model
from loaders.synthetic import write_synthetic_graph
from neurograph.config import Settings
from neurograph.store import EmbeddedFalkorDB, open_store

ROOT = Path(__file__).resolve().parents[1]
MODEL = "pp"
NEURON = """query($m: String!) { neuron(model: $m, layer: 1, index: 3) { key layer index
  outputs(first: 3) { totalCount edges { weight node { key } } } } }"""
RUN = """query($m: String!, $t: String!) { runText(model: $m, text: $t, top: 2) { tokens { token } } }"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_two_api_processes_share_the_port_the_worker_and_the_supervisor(tmp_path):
    data = tmp_path / "db"
    settings = Settings(data_dir=data, graph="g")
    store = await open_store(settings)
    await write_synthetic_graph(store, MODEL, n_layers=3, d_mlp=16, n_heads=0, d_vocab=50, k=2, n_examples=1)
    await store.close()

    port = _port()
    env = {**os.environ, "NEUROGRAPH_DATA_DIR": str(data), "NEUROGRAPH_GRAPH": "g", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from neurograph.cli import main; sys.exit(main())",
                             "serve", "--processes", "2", "--model", "tiny", "--port", str(port),
                             "--log-level", "info"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    base = f"http://127.0.0.1:{port}"

    def wait_for(pred, what: str, timeout: float = 120.0):
        t0 = time.monotonic()
        while not (got := pred()):
            assert proc.poll() is None, "".join(log)
            assert time.monotonic() - t0 < timeout, f"no {what} within {timeout} s:\n" + "".join(log)
            time.sleep(0.1)
        return got

    def health() -> dict:
        try:  # a new connection each time: either process may accept it
            return httpx.get(f"{base}/healthz", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return {}

    def pids_answering(n_conn: int = 24) -> dict[int, dict]:
        """pid -> the answers one keep-alive connection accepted by that process gave."""
        seen: dict[int, dict] = {}
        clients = [httpx.Client(base_url=base, timeout=60) for _ in range(n_conn)]
        try:
            for c in clients:  # all open at once, so the accepts spread over the processes
                c.get("/healthz")
            for c in clients:
                h = c.get("/healthz").json()
                if h["pid"] in seen:
                    continue
                neuron = c.post("/graphql", json={"query": NEURON, "variables": {"m": MODEL}}).json()
                run = c.post("/graphql", json={"query": RUN, "variables": {"m": worker_name, "t": "In the beginning"}}).json()
                seen[h["pid"]] = {"health": h, "neuron": neuron, "run": run}
        finally:
            for c in clients:
                c.close()
        return seen

    try:
        owner = wait_for(lambda: (h := health()).get("status") == "ok"
                         and h["servers"].get("model worker") == "up" and h["pid"] == proc.pid and h, "healthy owner")
        assert owner["servers"]["API process 1"] == "up", owner
        worker_name = tiny_model().name  # what the worker (`--model tiny`) runs
        seen = wait_for(lambda: s if len(s := pids_answering()) == 2 else None, "answers from two processes")
        assert proc.pid in seen
        peer = next(pid for pid in seen if pid != proc.pid)
        answers = list(seen.values())
        for a in answers:  # the same graph, and the model, from both
            assert "errors" not in a["neuron"] and a["neuron"] == answers[0]["neuron"], a
            assert "errors" not in a["run"], a["run"]
            assert a["run"]["data"]["runText"]["tokens"], a["run"]
        assert seen[peer]["health"]["servers"]["model worker"] == "up"

        os.kill(peer, signal.SIGKILL)  # the owner's supervisor starts another
        again = wait_for(lambda: s if len(s := pids_answering()) == 2 and peer not in s else None,
                         "a new peer answering", timeout=60)
        new_peer = next(pid for pid in again if pid != proc.pid)
        assert any("API process 1 restarted" in line for line in log), "".join(log)
        assert health().get("status") in ("ok", None)
    finally:
        proc.terminate()  # as a service manager stops it
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        EmbeddedFalkorDB(data).stop()
    assert sum("Application shutdown complete" in line for line in log) == 2, "".join(log)  # both, cleanly
    t0 = time.monotonic()
    while _alive(new_peer) and time.monotonic() - t0 < 20:
        time.sleep(0.1)
    assert not _alive(new_peer), "the peer outlived the server"


def test_a_taken_port_is_a_clear_error_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "neurograph", "serve", "--port", str(port)], cwd=ROOT,
                           env={**os.environ, "NEUROGRAPH_DATA_DIR": str(tmp_path / "db")}, capture_output=True,
                           text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "db").exists()  # no FalkorDB was started for nothing
