"""The store interface both engines implement.

    store = await open_store(Settings.from_env())
    await store.write("upsert_neurons", rows)                       # batched, idempotent
    rows = await store.query("neuron_by_key", key="smollm2-135m/3/17")   # named read
    rows = await store.run("MATCH (n:Neuron) RETURN count(n) AS n")      # ad-hoc read
    await store.close()

Reads return plain Python data: nodes and relationships become dicts of their properties.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Sequence

from ..domain import NEURON_PROP_QUERIES, neuron_prop_rows
from ..errors import QueryError, StoreUnavailable
from ..queries import QUERIES, QueryLibrary

log = logging.getLogger(__name__)

# Clauses and procedures that write. Checked on top of the engines' own read-only modes.
_WRITE_CLAUSE = re.compile(
    r"\b(CREATE|MERGE|SET|DELETE|DETACH|REMOVE|DROP|LOAD\s+CSV|FOREACH)\b", re.IGNORECASE
)
# Procedures known to only read; any other CALL is refused. `CALL {` subqueries are fine:
# their clauses are checked like the rest of the text.
_READ_PROCS = (r"db\.(labels|relationshipTypes|propertyKeys|indexes|constraints|schema\.\w+)",
               r"db\.idx\.(fulltext|vector)\.query(Nodes|Relationships)", r"db\.index\.(fulltext|vector)\.query(Nodes|Relationships)",
               r"algo\.\w+", r"dbms\.components")
_WRITE_PROC = re.compile(r"\bCALL\s+(?!\{)(?!(?:%s)\s*\()" % "|".join(_READ_PROCS), re.IGNORECASE)
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def refuse_writes(text: str) -> None:
    """Raise QueryError when a statement could write. Strings and comments are ignored,
    so a literal 'CREATE' in a string is fine, while 'CRE/**/ATE' tricks still fail to parse."""
    bare = _STRING.sub("''", _COMMENT.sub(" ", text))
    m = _WRITE_CLAUSE.search(bare)
    if m:
        raise QueryError(f"read-only: {m.group(1).upper()} is not allowed here")
    if _WRITE_PROC.search(bare):
        raise QueryError("read-only: procedure calls are not allowed here")


def chunks(rows: Sequence[dict] | Iterable[dict], size: int) -> Iterable[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Store(ABC):
    """One graph database. Subclasses: FalkorStore (embedded default), Neo4jStore (production)."""

    engine: str = "?"
    retries: int = 5

    def __init__(self, queries: QueryLibrary = QUERIES) -> None:
        self.queries = queries
        self.round_trips = 0  # every statement sent to the server counts one
        self.local_writes = 0  # stamps this object wrote: its own readers need not wait to see them

    # --- what engines implement -------------------------------------------------------
    @abstractmethod
    async def _run(self, text: str, params: dict[str, Any], *, write: bool, timeout_ms: int | None) -> list[dict]:
        ...

    @abstractmethod
    async def _transient(self, exc: BaseException) -> bool:
        """Whether exc is worth a retry (connection dropped, server loading)."""

    @abstractmethod
    async def ensure_schema(self) -> None: ...

    @abstractmethod
    async def read_stamp(self) -> str:
        """The graph's change stamp: a new value after every write by any process ("" before
        the first). The API keys its cached answers by it (see neurograph.api.cache)."""

    @abstractmethod
    async def _write_stamp(self, stamp: str) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _drop(self) -> None: ...

    async def clear(self, *, schema: bool = True) -> None:
        """Delete the whole graph; the schema (indexes, constraints) is made again unless
        ``schema=False``, so the store stays usable, full-text search included."""
        await self._drop()
        if schema:
            await self.ensure_schema()
        await self.bump_stamp()

    # --- shared behaviour --------------------------------------------------------------
    async def run(self, text: str, params: dict[str, Any] | None = None, *, write: bool = False,
                  timeout_ms: int | None = None) -> list[dict]:
        """Run one statement, retrying transient failures; writes must be idempotent to retry."""
        params = params or {}
        delay = 0.05
        for attempt in range(self.retries + 1):
            self.round_trips += 1
            try:
                rows = await self._run(text, params, write=write, timeout_ms=timeout_ms)
                if write:
                    # After the write, not before: a reader that saw the old stamp cannot
                    # keep an answer made from the old data under the new one. One more
                    # round trip per write statement: 0.21 ms, 0.2% of a 1M-edge bulk load.
                    await self.bump_stamp()
                return rows
            except (QueryError, StoreUnavailable):
                raise
            except Exception as exc:  # engine-specific, classified below
                if attempt < self.retries and await self._transient(exc):
                    log.warning("transient %s error (%s); retry %d", self.engine, exc, attempt + 1)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise self._wrap(exc) from exc
        raise AssertionError("unreachable")

    async def bump_stamp(self) -> None:
        """Mark the graph changed (``run`` does it after every write statement)."""
        await self._write_stamp(uuid.uuid4().hex)
        self.local_writes += 1

    def _wrap(self, exc: BaseException) -> Exception:
        return QueryError(f"{self.engine}: {exc}")

    async def query(self, name: str, **params: Any) -> list[dict]:
        """Run a named query from ``cypher/``."""
        q = self.queries[name]
        missing = [p for p in q.params if p not in params]
        if missing:
            raise QueryError(f"query {name!r} needs parameters: {', '.join(missing)}")
        return await self.run(q.text, params, write=q.writes)

    async def write(self, name: str, rows: Iterable[dict], *, batch_size: int = 2000,
                    progress: Callable[[int], None] | None = None, **params: Any) -> int:
        """``UNWIND $rows`` a named query over rows in batches; returns rows written."""
        text = self.queries[name].text
        if name in NEURON_PROP_QUERIES:  # one vocabulary for neuron properties, whoever writes them
            rows = neuron_prop_rows(rows)
        n = 0
        for batch in chunks(rows, batch_size):
            await self.run(text, {"rows": batch, **params}, write=True)
            n += len(batch)
            if progress:
                progress(len(batch))
        return n

    async def read_only(self, text: str, params: dict[str, Any] | None = None, *,
                        timeout_ms: int = 5000, max_rows: int = 1000) -> tuple[list[dict], bool]:
        """Power users' Cypher: refused if it could write, cut off at timeout_ms, at most max_rows.
        Returns (rows, truncated)."""
        refuse_writes(text)
        try:
            # The server enforces timeout_ms where it can; a few operators (e.g. a huge range())
            # are not interruptible there, so the client gives up too, shortly after.
            rows = await asyncio.wait_for(self.run(text, params, write=False, timeout_ms=timeout_ms),
                                          timeout=timeout_ms / 1000 + 1.0)
        except asyncio.TimeoutError as e:
            raise QueryError(f"the query exceeded its time limit of {timeout_ms} ms") from e
        return rows[:max_rows], len(rows) > max_rows

    async def compact(self) -> None:
        """After a bulk load: let the engine compact its write log (no-op where it has none)."""

    async def ping(self) -> bool:
        rows = await self.query("ping")
        return rows == [{"one": 1}]

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
