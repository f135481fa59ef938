"""loaders.fetch against a real HTTP server on 127.0.0.1: cache, retries, 404s, rate limit."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loaders.fetch import FetchError, Fetcher


class _Server:
    """/ok/* answers 200 with JSON; /flaky answers 503 twice, then 200; /gone 404; /down 500."""

    def __init__(self) -> None:
        hits: Counter[str] = Counter()
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] += 1
                if self.path.startswith("/ok"):
                    self._send(200, {"path": self.path})
                elif self.path == "/flaky":
                    self._send(503 if hits[self.path] <= 2 else 200, {"try": hits[self.path]})
                elif self.path == "/down":
                    self._send(500, {"error": "down"})
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


async def test_cache_serves_second_request(server, tmp_path):
    async with Fetcher(tmp_path, rate=0) as f:
        assert await f.get_json(f"{server.url}/ok/a") == {"path": "/ok/a"}
        assert await f.get_json(f"{server.url}/ok/a") == {"path": "/ok/a"}
    assert server.hits["/ok/a"] == 1
    # a new fetcher on the same cache folder (a resumed import) sends nothing either
    async with Fetcher(tmp_path, rate=0) as f:
        await f.get(f"{server.url}/ok/a", suffix=".json")
        assert f.requests == 0
    assert not list(tmp_path.rglob("*.tmp"))


async def test_retries_transient_errors_with_backoff(server, tmp_path):
    async with Fetcher(tmp_path, rate=0, backoff=0.01) as f:
        assert await f.get_json(f"{server.url}/flaky") == {"try": 3}
        with pytest.raises(FetchError, match=r"/down: gave up after 3 tries \(HTTP 500\)"):
            f.retries = 2
            await f.get(f"{server.url}/down")
    assert server.hits["/flaky"] == 3 and server.hits["/down"] == 3


async def test_404_is_final_and_mirror_skips_it(server, tmp_path):
    async with Fetcher(tmp_path, rate=0, backoff=0.01) as f:
        with pytest.raises(FetchError) as info:
            await f.get(f"{server.url}/gone")
        assert info.value.status == 404
        root = await f.mirror(server.url, ["ok/1", "gone", "ok/2"], suffix=".json", dest=tmp_path / "m")
    assert server.hits["/gone"] == 2  # once per call, never retried
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json")) == ["ok/1.json", "ok/2.json"]
    assert json.loads((root / "ok" / "2.json").read_text()) == {"path": "/ok/2"}


async def test_rate_limit_spaces_requests(server, tmp_path):
    async with Fetcher(tmp_path, rate=20) as f:
        start = time.monotonic()
        for i in range(5):
            await f.get(f"{server.url}/ok/{i}")
        elapsed = time.monotonic() - start
    assert elapsed >= 4 / 20 * 0.9
    assert sum(server.hits.values()) == 5


class _Files:
    """A folder served as static files on 127.0.0.1."""

    def __init__(self, root) -> None:
        from functools import partial
        from http.server import SimpleHTTPRequestHandler

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> "_Files":
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def _snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN n.key AS key, properties(n) AS p ORDER BY key")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b")
    return [repr(sorted(r.items())) for r in nodes], sorted(repr(sorted(r.items())) for r in edges)


async def test_openai_and_universal_neurons_by_url(store, shared_data, tmp_path):
    from pathlib import Path

    from loaders.registry import import_source

    oai = Path(__file__).parent / "fixtures" / "openai"
    with _Files(oai) as files:
        s = await import_source(store, "openai", files.url, model="toy-oai", neurons=[(0, 1), (1, 3)],
                                cache_dir=tmp_path / "c", progress=False)
        assert s["units"] == 8  # every file of both neurons, .jsonl explanations included
    with _Files(shared_data / "universal-neurons") as files:
        s = await import_source(store, "universal-neurons",
                                f"{files.url}/stanford-gpt2-small-a.universal.csv", cache_dir=tmp_path / "c",
                                progress=False)
        assert (s["model"], s["neurons"]) == ("stanford-gpt2-small-a", 1533)
    fetched = await _snapshot(store)
    await import_source(store, "openai", oai, model="toy-oai", progress=False)
    await import_source(store, "universal-neurons", shared_data / "universal-neurons" /
                        "stanford-gpt2-small-a.universal.csv", progress=False)
    assert await _snapshot(store) == fetched


async def test_torch_summary_by_url(store, tmp_path):
    import importlib.util
    from pathlib import Path

    from loaders.registry import import_source

    spec = importlib.util.spec_from_file_location("make_fixtures", Path(__file__).parent / "fixtures" / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write_pt_fixtures(tmp_path / "site" / "toy-url" / "weights")
    with _Files(tmp_path / "site") as files:
        s = await import_source(store, "universal-neurons", f"{files.url}/toy-url/weights/neuron_comps.pt",
                                cache_dir=tmp_path / "c", progress=False)
    assert (s["model"], s["n_layers"], s["d_mlp"]) == ("toy-url", mod.N_LAYERS, mod.D_MLP)
    n = await store.run("MATCH (:Neuron)-[e:COMPOSES]->(:Neuron) RETURN count(e) AS n")
    assert n[0]["n"] == s["rows"]["upsert_composes"] == 4 * mod.N_LAYERS * mod.D_MLP * 2 * 3
