"""FalkorDB engine: the embedded default (or any FalkorDB reachable by URL).

    store = await FalkorStore.connect(Settings.from_env())   # starts the embedded server if needed
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
import redis.exceptions as rex
from falkordb.asyncio import FalkorDB
from falkordb.edge import Edge
from falkordb.node import Node
from falkordb.path import Path as FPath

from ..config import Settings
from ..domain import NODE_LABELS
from ..errors import QueryError, StoreUnavailable
from .base import Store
from .embedded import EmbeddedFalkorDB


def plain(value: Any) -> Any:
    """FalkorDB result values as plain Python data."""
    if isinstance(value, Node):
        return dict(value.properties)
    if isinstance(value, Edge):
        return {**value.properties, "_type": value.relation}
    if isinstance(value, FPath):
        return {"nodes": [plain(n) for n in value.nodes()], "edges": [plain(e) for e in value.edges()]}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


MAX_CONNECTIONS = 32
NUL_STANDIN = "\u2400"  # SYMBOL FOR NULL


def without_nul(value: Any) -> Any:
    """FalkorDB reads parameters as C strings: a NUL character cuts the query text and fails
    it. Token texts can contain one (byte-level vocabularies), so it is stored as U+2400."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_STANDIN) if "\x00" in value else value
    if isinstance(value, dict):
        return {k: without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        # numeric lists (activations) are the bulk of large writes: skip them quickly
        if value and not isinstance(value[0], (str, dict, list)) and not any(isinstance(v, str) for v in value):
            return value
        return [without_nul(v) for v in value]
    return value


def connection_pool(url: str) -> redis.BlockingConnectionPool:
    """A pool where a burst of concurrent queries waits for a free connection instead of
    failing with "Too many connections" (FalkorDB runs a few query threads anyway)."""
    if url.startswith("falkor://"):
        url = "redis://" + url[len("falkor://"):]
    elif url.startswith("falkors://"):
        url = "rediss://" + url[len("falkors://"):]
    # redis-py would cut any reply after 5 s; long loads and exports are legitimate here.
    return redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=60, socket_timeout=3600, socket_connect_timeout=5,
        decode_responses=True)


class FalkorStore(Store):
    engine = "falkordb"

    def __init__(self, db: FalkorDB, graph: str, server: EmbeddedFalkorDB | None = None) -> None:
        super().__init__()
        self.db = db
        self.graph_name = graph
        self.graph = db.select_graph(graph)
        self.server = server

    @classmethod
    async def connect(cls, settings: Settings, *, start: bool = True) -> "FalkorStore":
        server = None
        url = settings.falkordb_url
        if url is None:
            server = EmbeddedFalkorDB(settings.data_dir, settings.falkordb_port)
            if start:
                server.start()
            elif not server.is_running():
                raise StoreUnavailable(
                    f"no FalkorDB running for {server.data_dir}: start it with `neurograph db start`")
            url = server.url
        try:
            db = FalkorDB(connection_pool=connection_pool(url))
            await db.connection.ping()
            store = cls(db, settings.graph, server)
            # A write creates the graph key, so read-only queries on a new graph see an empty
            # graph instead of FalkorDB's "empty key" error.
            await store.graph.query("RETURN 1")
        except (rex.RedisError, OSError, ValueError) as e:
            raise StoreUnavailable(f"cannot reach FalkorDB at {url}: {e}") from e
        return store

    async def _run(self, text: str, params: dict[str, Any], *, write: bool, timeout_ms: int | None) -> list[dict]:
        params = without_nul(params)
        try:
            if write:
                res = await self.graph.query(text, params or None, timeout=timeout_ms)
            else:
                res = await self.graph.ro_query(text, params or None, timeout=timeout_ms)
        except rex.ResponseError as e:
            if "timed out" in str(e).lower():
                raise QueryError(f"the query exceeded its time limit of {timeout_ms} ms") from e
            raise QueryError(f"falkordb: {e}") from e
        if not res.header:
            return []
        names = [h[1] if isinstance(h, (list, tuple)) else h for h in res.header]
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
        return [dict(zip(names, (plain(v) for v in row))) for row in res.result_set]

    async def _transient(self, exc: BaseException) -> bool:
        # A read timeout is not transient: the query itself is slow, and a retry repeats the load.
        if isinstance(exc, (rex.ConnectionError, rex.BusyLoadingError, ConnectionError)) and not isinstance(
                exc, rex.TimeoutError):
            if self.server is not None and not self.server.is_running():
                return False  # nobody to reconnect to: fail clearly instead of spinning
            return True
        return False

    def _wrap(self, exc: BaseException) -> Exception:
        if isinstance(exc, rex.TimeoutError):
            return QueryError(f"FalkorDB did not answer in time: {exc}")
        if isinstance(exc, (rex.ConnectionError, ConnectionError, OSError)):
            return StoreUnavailable(f"FalkorDB is not reachable: {exc}")
        return super()._wrap(exc)

    async def ensure_schema(self) -> None:
        for stmt in self.queries.schema("falkordb"):
            try:
                await self.run(stmt, write=True)
            except QueryError as e:
                if "already indexed" not in str(e) and "already exists" not in str(e):
                    raise
        # Uniqueness constraints are a FalkorDB command, not Cypher; they need the index above.
        for label in NODE_LABELS:
            try:
                await self.db.connection.execute_command(
                    "GRAPH.CONSTRAINT", "CREATE", self.graph_name, "UNIQUE", "NODE", label,
                    "PROPERTIES", 1, "key")
            except rex.ResponseError as e:
                if "already exists" not in str(e).lower():
                    raise QueryError(f"falkordb constraint on {label}.key: {e}") from e

    async def compact(self) -> None:
        """Rewrite the AOF in the background: a restart then loads a snapshot instead of
        replaying every batch of the load."""
        try:
            await self.db.connection.execute_command("BGREWRITEAOF")
        except rex.ResponseError as e:  # one already running is fine
            if "already in progress" not in str(e):
                raise QueryError(f"falkordb: {e}") from e

    async def _drop(self) -> None:
        try:
            await self.graph.delete()
        except rex.ResponseError:
            pass  # no graph yet

    async def close(self) -> None:
        await self.db.connection.aclose()
