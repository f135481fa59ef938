"""`pip install .` gives a working NeuroGraph: the wheel carries cypher/, graphql/ and web/ as
package data, and `neurograph serve` from a fresh environment outside the checkout serves a
real graph over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import site
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from loaders.synthetic import write_synthetic_graph

ROOT = Path(__file__).resolve().parents[1]
MODEL = "whl"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src") / "neurograph"
    # from a copy of what a source distribution holds, so the build writes nothing into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("neurograph", "loaders", "cypher", "graphql", "web"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules", "_data"))
    # the build backend from this environment (nothing downloaded); setup.py copies the folders in
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, cwd=out, capture_output=True)
    (built,) = out.glob("neurograph-*.whl")
    return built


def test_the_wheel_carries_the_folders_neurograph_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("cypher", "*.cypher"), ("cypher", "schema/*.cypher"), ("graphql", "*.graphql"),
                            ("web", "js/*.js"), ("web", "vendor/*.js")):
        files = [p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob(pattern)]
        assert files and {f"neurograph/_data/{f}" for f in files} <= names, (folder, pattern)
    assert "neurograph/_data/web/index.html" in names and "neurograph/api/app.py" in names
    assert not any("node_modules" in n or n.startswith(("tests/", "bench/")) for n in names)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_installed_wheel_serves_a_graph(wheel, store, settings, tmp_path):
    await write_synthetic_graph(store, MODEL, n_layers=2, d_mlp=6, n_heads=2, d_vocab=40, k=3, seed=5)
    # A fresh environment outside the checkout: the wheel without its dependencies, which it
    # finds in this environment's site-packages (no download; torch is not needed to serve).
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    # a plain path line: the dependencies; this environment's editable neurograph is not taken
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    where = subprocess.run([str(python), "-c", "import json, neurograph, neurograph.resources as r; "
                            "print(json.dumps([neurograph.__file__, str(r.CYPHER_DIR), str(r.WEB_DIR)]))"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    package, cypher_dir, web_dir = json.loads(where)
    assert all(Path(p).is_relative_to(env_dir) for p in (package, cypher_dir, web_dir)), where

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGRAPH_")}
    env.update(NEUROGRAPH_DATA_DIR=str(settings.data_dir), NEUROGRAPH_GRAPH=settings.graph, PYTHONPATH="")
    server = subprocess.Popen([str(env_dir / "bin" / "neurograph"), "serve", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            for _ in range(300):
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.05)
            page = (await c.get("/operations/neuron_page.graphql")).text  # graphql/ from the wheel
            r = await c.post("/graphql", json={"query": page, "variables": {"model": MODEL, "layer": 1, "index": 4}})
            assert r.status_code == 200 and not r.json().get("errors"), r.text
            assert r.json()["data"]["neuron"]["key"] == f"{MODEL}/1/4"
            models = (await c.post("/graphql", json={"query": "{ models { name neuronCount } }"})).json()
            assert models["data"]["models"] == [{"name": MODEL, "neuronCount": 12}]
            rest = await c.get(f"/api/{MODEL}/neuroscope/1/4")  # cypher/ from the wheel, through REST
            assert rest.status_code == 200, rest.text
            index = await c.get("/")  # web/ from the wheel
            assert index.status_code == 200 and "<script" in index.text
            assert (await c.get("/js/main.js")).status_code == 200
    finally:
        server.terminate()
        server.wait(10)


def _pins(path: Path) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith((" ", "#")):
            pins[canonicalize_name(name)] = version.partition(";")[0].strip()  # a marker may follow
    return pins


@pytest.mark.parametrize("lock, extras", [("api.txt", ()), ("dev.txt", ("compute", "test"))])
def test_the_lock_pins_every_declared_dependency_within_its_range(lock, extras):
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    pins = _pins(ROOT / "requirements" / lock)
    for req in declared:
        if req.marker is not None and not req.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} is declared in pyproject.toml but not pinned in {lock}: make lock"
        assert req.specifier.contains(pinned, prereleases=True), f"{lock} pins {req.name}=={pinned}, outside {req}"
    if "compute" in extras:
        assert pins["torch"] == "2.13.0+cpu"  # the CPU build on disk, never a CUDA one
