"""docker-compose.yml and the Dockerfile describe Neo4j 5 plus the API, and compose accepts them.

Debian's docker-compose validates a file without a Docker engine (`config -q`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


def _compose(*args: str, password: str | None = "test-password") -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: apt-get install docker-compose (make system)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "NEUROGRAPH_"))}
    if password is not None:
        env["NEO4J_PASSWORD"] = password
    return subprocess.run([exe, "-f", str(COMPOSE), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The file as compose resolves it (variables substituted, defaults filled in)."""
    proc = _compose("config")
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_config_is_valid():
    proc = _compose("config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_password_is_required():
    proc = _compose("config", "-q", password=None)
    assert proc.returncode != 0 and "NEO4J_PASSWORD" in proc.stderr


def test_neo4j_service(resolved):
    neo = resolved["services"]["neo4j"]
    assert re.fullmatch(r"neo4j:5\.\d+(\.\d+)?-community", neo["image"])
    assert neo["environment"]["NEO4J_AUTH"] == "neo4j/test-password"
    assert "apoc" not in str(neo).lower()
    # compose 1.x prints short syntax (src:dst:mode), 2.x long syntax ({source, target})
    targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in neo["volumes"]}
    assert targets >= {"/data", "/logs", "/import"}
    assert neo["healthcheck"]["test"] and neo["healthcheck"]["retries"] > 0
    ports = {int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1]) for p in neo["ports"]}
    assert ports == {7474, 7687}


def test_api_service(resolved):
    api = resolved["services"]["api"]
    env = api["environment"]
    assert env["NEUROGRAPH_ENGINE"] == "neo4j"
    assert env["NEO4J_URI"] == "bolt://neo4j:7687"
    assert env["NEO4J_PASSWORD"] == "test-password"
    assert api["command"][:4] == ["neurograph", "serve", "--host", "0.0.0.0"]
    assert api["depends_on"]["neo4j"]["condition"] == "service_healthy"
    assert Path(api["build"]["context"]).resolve() == ROOT
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    # the same file parses as plain YAML (what editors and other tools see)
    raw = yaml.safe_load(COMPOSE.read_text())
    assert set(raw["services"]) == {"neo4j", "api"} and set(raw["volumes"]) >= {"neo4j-data"}


def test_dockerfile_builds_the_api_without_compute():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    install = re.findall(r"pip install[^\n]*", text)
    assert install and not any("compute" in line or "torch" in line for line in install)
    assert 'CMD ["neurograph", "serve", "--host", "0.0.0.0"' in text
    assert "NEUROGRAPH_ENGINE=neo4j" in text and "NEO4J_URI=bolt://neo4j:7687" in text
    # everything the API reads at run time is copied in; the build context leaves bulk out
    for folder in ("neurograph/", "cypher/", "web/"):
        assert f"COPY {folder}" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "**/node_modules"} <= set(ignored)
