"""Shared fixtures: one real embedded FalkorDB per test session, a fresh graph per test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from neurograph.config import Settings
from neurograph.store import EmbeddedFalkorDB, open_store

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def falkordb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("falkordb")
    server = EmbeddedFalkorDB(d)
    server.start()
    yield d
    server.stop()


@pytest.fixture
def settings(falkordb_dir: Path) -> Settings:
    """Settings pointing at the session's FalkorDB with a graph of this test's own."""
    return Settings(data_dir=falkordb_dir, graph=f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(settings: Settings):
    s = await open_store(settings)
    yield s
    await s.clear(schema=False)
    await s.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared data folder (../shared/data beside the checkout)."""
    path = SHARED / "data"
    assert path.is_dir(), f"{path} is missing: tests need ../shared beside the checkout"
    return path
