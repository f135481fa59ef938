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
import time
import uuid
from contextvars import ContextVar
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Sequence

import orjson

from ..domain import NEURON_PROP_QUERIES, neuron_prop_rows
from ..errors import QueryError, StoreUnavailable
from ..neighbours import touched_units
from ..queries import QUERIES, QueryLibrary
from .guard import checked_read_only, refuse_writes  # noqa: F401 - refuse_writes re-exported

log = logging.getLogger(__name__)

def chunks(rows: Sequence[dict] | Iterable[dict], size: int) -> Iterable[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# When the work on behalf of the current request must end (time.monotonic()), set by the API
# per request (neurograph.api.deadline): every query then carries what is left of it as its
# server-side time limit, so nothing runs on for a request that was given up.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def time_left_ms(timeout_ms: int | None) -> int | None:
    """``timeout_ms`` shortened to what the current request has left (None: no limit at all)."""
    deadline = request_deadline.get()
    if deadline is None:
        return timeout_ms
    left = int((deadline - time.monotonic()) * 1000)
    if left <= 0:
        raise QueryError("the request ran out of time before this query")
    return left if timeout_ms is None else min(timeout_ms, left)


def bounded(rows: list[dict], max_bytes: int) -> list[dict]:
    """The leading rows whose JSON takes at most ``max_bytes``; QueryError when not even one fits."""
    total = 0
    for i, row in enumerate(rows):
        total += len(orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS)) + 1
        if total > max_bytes:
            if i == 0:
                raise QueryError(f"the first row alone is larger than the answer's limit of {max_bytes} bytes")
            return rows[:i]
    return rows


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
                rows = await self._run(text, params, write=write, timeout_ms=time_left_ms(timeout_ms))
                if write:
                    # After the write, not before: a reader that saw the old stamp cannot
                    # keep an answer made from the old data under the new one. One more
                    # round trip per write statement: 0.21 ms, 0.2% of a 1M-edge bulk load.
                    await self.bump_stamp()
                    if self.keeps_neighbour_lists:
                        touched = touched_units(text, params, rows)
                        if touched != []:
                            await self.forget_neighbour_lists(touched)
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

    # --- neighbour lists (neurograph/neighbours.py), kept beside the graph where the engine can
    keeps_neighbour_lists = False

    async def neighbour_lists(self, keys: list[str]) -> tuple[int, list[str | None]] | None:
        """(edges kept per group, each unit's list or None where it has none); None when this
        store keeps no lists."""
        return None

    async def neighbour_list_units(self) -> set[str]:
        """The units that have a list."""
        return set()

    async def put_neighbour_lists(self, k: int, lists: dict[str, str]) -> None:
        raise NotImplementedError(f"{self.engine} keeps no neighbour lists")

    async def forget_neighbour_lists(self, keys: list[str] | None = None) -> None:
        """Drop the lists of these units (of all units when None)."""

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
                        timeout_ms: int = 5000, max_rows: int = 1000,
                        max_bytes: int = 8 * 2**20) -> tuple[list[dict], bool]:
        """Power users' Cypher: only what the read-only grammar vouches for (guard.py), run in
        isolation (``_run_untrusted``), cut off at timeout_ms, at most max_rows rows and
        max_bytes bytes of JSON. Returns (rows, truncated)."""
        text = checked_read_only(text)
        await self._prepare_untrusted()  # may start the sandbox: not part of the query's time
        timeout_ms = time_left_ms(timeout_ms)
        try:
            # The server enforces timeout_ms where it can; a few operators (e.g. a huge range())
            # are not interruptible there, so the client gives up too, shortly after.
            rows = await asyncio.wait_for(self._run_untrusted(text, params or {}, timeout_ms),
                                          timeout=timeout_ms / 1000 + 1.0)
        except asyncio.TimeoutError as e:
            raise QueryError(f"the query exceeded its time limit of {timeout_ms} ms") from e
        except (QueryError, StoreUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - engine-specific
            raise self._wrap(exc) from exc
        kept = bounded(rows[:max_rows], max_bytes)
        return kept, len(rows) > len(kept)

    async def _prepare_untrusted(self) -> None:
        """Make ready where untrusted reads run (FalkorDB: start and sync its read replica)."""

    async def _run_untrusted(self, text: str, params: dict[str, Any], timeout_ms: int) -> list[dict]:
        """Where untrusted reads run; engines that can crash on a query isolate them (FalkorDB: a
        read replica). The default: the engine's own read-only mode."""
        return await self.run(text, params, write=False, timeout_ms=timeout_ms)

    async def compact(self) -> None:
        """After a bulk load: let the engine compact its write log (no-op where it has none)."""

    async def ping(self) -> bool:
        rows = await self.query("ping")
        return rows == [{"one": 1}]

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
