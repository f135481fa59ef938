"""The Cypher library: every statement NeuroGraph runs lives in ``cypher/`` as a file.

``cypher/<name>.cypher`` holds one named query; its header comment lists the parameters.
Per-engine schema files live in ``cypher/schema/``, power-user recipes in ``cypher/recipes/``.

    >>> q = QUERIES["ping"]          # doctest: +SKIP
    >>> q.text, q.params             # doctest: +SKIP
    ('RETURN 1 AS one', ())
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import resources

CYPHER_DIR = Path(os.environ.get("NEUROGRAPH_CYPHER_DIR", resources.CYPHER_DIR))

_PARAMS = re.compile(r"^//[ \t]*params:[ \t]*(.*)$", re.MULTILINE)
_WRITES = re.compile(r"\b(CREATE|MERGE|SET|DELETE|REMOVE|DETACH)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    name: str
    text: str
    params: tuple[str, ...]
    writes: bool
    path: Path


def parse_file(path: Path) -> Query:
    raw = path.read_text()
    m = _PARAMS.search(raw)
    params = tuple(dict.fromkeys(re.findall(r"\$(\w+)", m.group(1)))) if m else ()
    body = "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("//")).strip()
    return Query(path.stem, body, params, bool(_WRITES.search(body)), path)


class QueryLibrary:
    """Named queries loaded lazily from a folder; ``lib[name]`` or ``lib.text(name)``."""

    def __init__(self, folder: Path = CYPHER_DIR) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, Query] = {}

    def __getitem__(self, name: str) -> Query:
        if name not in self._cache:
            path = self.folder / f"{name}.cypher"
            if not path.is_file():
                raise KeyError(f"no Cypher query named {name!r} in {self.folder}")
            self._cache[name] = parse_file(path)
        return self._cache[name]

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.cypher"))

    def all(self) -> list[Query]:
        return [self[n] for n in self.names()]

    def schema(self, engine: str) -> list[str]:
        """The schema statements for an engine, one per non-comment line block ending in ';'."""
        raw = (self.folder / "schema" / f"{engine}.cypher").read_text()
        body = "\n".join(l for l in raw.splitlines() if not l.lstrip().startswith("//"))
        return [s.strip() for s in body.split(";") if s.strip()]


QUERIES = QueryLibrary()
