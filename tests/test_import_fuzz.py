"""Fuzzing the importers: random bytes and truncations of every fixture file of every
source give a clear error and leave the graph exactly as it was."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from loaders.registry import import_source
from neurograph.errors import NeuroGraphError

FIX = Path(__file__).resolve().parent / "fixtures"
# (case id, source, fixture tree, import options)
SOURCES = [
    ("deepdecipher", "deepdecipher", FIX / "deepdecipher" / "toy-dd", {}),
    ("deepdecipher-pages", "deepdecipher", FIX / "deepdecipher" / "toy-dd-pages", {}),
    ("neuroscope", "neuroscope", FIX / "neuroscope" / "toy-ns", {}),
    ("openai", "openai", FIX / "openai", {"model": "toy-oai"}),
    ("universal-neurons", "universal-neurons", FIX / "universal-neurons" / "toy-un", {"model": "toy-un"}),
    ("universal-neurons-real", "universal-neurons", FIX / "universal-neurons" / "interpretable_neurons", {}),
    ("n2g", "n2g", FIX / "n2g", {}),
]
VARIANTS_PER_FILE = 6


async def snapshot(store) -> tuple:
    nodes = await store.run("MATCH (n) RETURN n.key AS k, properties(n) AS p ORDER BY k")
    edges = await store.run("MATCH (a)-[e]->(b) RETURN a.key AS a, type(e) AS t, properties(e) AS p, b.key AS b "
                            "ORDER BY a, t, b")
    return (sorted(map(str, nodes)), sorted(map(str, edges)))


def variants(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    out = [("empty", b"")]
    for _ in range(VARIANTS_PER_FILE // 2):
        out.append(("random bytes", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400)))))
        cut = rng.randint(1, max(1, len(data) - 1))
        out.append((f"truncated at {cut}/{len(data)}", data[:cut]))
    return out


@pytest.mark.parametrize("case,source,tree,options", SOURCES, ids=[s[0] for s in SOURCES])
async def test_random_bytes_and_truncations_change_nothing(store, tmp_path, case, source, tree, options):
    # a graph with data in it already (from the other sources), so "nothing changed" means something
    await import_source(store, "deepdecipher", FIX / "deepdecipher" / "toy-dd", progress=False)
    before = await snapshot(store)
    rng = random.Random(f"{case}-fuzz")
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    assert files
    fuzzed = 0
    for f in files:
        for label, payload in variants(f.read_bytes(), rng):
            root = tmp_path / f"case{fuzzed}"
            shutil.copytree(tree, root)
            (root / f.relative_to(tree)).write_bytes(payload)
            try:
                await import_source(store, source, root, progress=False, **options)
            except NeuroGraphError as e:
                assert str(e).strip(), (f, label)
                assert await snapshot(store) == before, (f, label, str(e))
            else:
                # Some damage leaves a valid file (e.g. a CSV cut at a row boundary, or an
                # optional file emptied): then the import must equal a clean import of that input.
                clean_store_state = await snapshot(store)
                await import_source(store, source, root, progress=False, **options)
                assert await snapshot(store) == clean_store_state, (f, label)
                await store.clear()
                await import_source(store, "deepdecipher", FIX / "deepdecipher" / "toy-dd", progress=False)
                before = await snapshot(store)
            fuzzed += 1
            shutil.rmtree(root)
    assert fuzzed >= len(files) * VARIANTS_PER_FILE
