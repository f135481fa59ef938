"""FalkorDB engine: the embedded default (or any FalkorDB reachable by URL).

    store = await FalkorStore.connect(Settings.from_env())   # starts the embedded server if needed
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as redis
import redis.exceptions as rex
from dateutil.relativedelta import relativedelta
from falkordb.asyncio import FalkorDB

from ..config import Settings
from ..domain import NODE_LABELS
from ..errors import QueryError, StoreUnavailable
from .base import Store
from .embedded import EmbeddedFalkorDB, ReadReplica

log = logging.getLogger(__name__)


class _StaleSchema(Exception):
    """A reply names a relationship type or property key this client has not seen yet."""


class _Schema:
    """FalkorDB's compact replies name relationship types and property keys by index (labels
    too, unused here: a node reads as its properties); these are the names, refreshed when a
    reply uses an index beyond them."""

    def __init__(self) -> None:
        self.relations: list[str] = []
        self.properties: list[str] = []

    def name(self, names: list[str], i: int) -> str:
        if i >= len(names):
            raise _StaleSchema
        return names[i]


_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


def _value(t: int, v: Any, schema: _Schema) -> Any:
    """One value of a compact reply (type code ``t``, raw ``v``) as plain Python data: nodes
    become dicts of their properties, relationships too (plus ``_type``), maps dicts.

    A synchronous parser: falkordb-py's awaits a coroutine per value, and a neuron page's
    replies hold thousands of values."""
    if t == 2 or t == 3:  # string, integer (hiredis already made it an int)
        return v
    if t == 5:
        return float(v)
    if t == 6:
        return [x if tx == 2 or tx == 3 else float(x) if tx == 5 else _value(tx, x, schema) for tx, x in v]
    if t == 1:
        return None
    if t == 4:
        return v == "true"
    if t == 10:
        return {v[i]: _value(v[i + 1][0], v[i + 1][1], schema) for i in range(0, len(v), 2)}
    if t == 8:  # node: [id, [label ids], [[property id, type, value], ...]]
        return _properties(v[2], schema)
    if t == 7:  # edge: [id, type id, source id, destination id, properties]
        props = _properties(v[4], schema)
        props["_type"] = schema.name(schema.relations, v[1])
        return props
    if t == 9:  # path: [nodes array, edges array]
        return {"nodes": _value(*v[0], schema), "edges": _value(*v[1], schema)}
    if t == 11:
        return {"latitude": float(v[0]), "longitude": float(v[1])}
    if t == 12:
        return [float(x) for x in v]
    if t == 13:
        return datetime.fromtimestamp(v, tz=_UTC)
    if t == 14:
        return datetime.fromtimestamp(v, tz=_UTC).date()
    if t == 15:
        return datetime.fromtimestamp(v, tz=_UTC).time()
    if t == 16:
        return relativedelta(datetime.fromtimestamp(v, tz=_UTC), _EPOCH)
    raise QueryError(f"falkordb: a value of unknown type {t}")


def _properties(props: list, schema: _Schema) -> dict:
    names = schema.properties
    out = {}
    for i, t, v in props:
        if i >= len(names):
            raise _StaleSchema
        out[names[i]] = v if t == 2 or t == 3 else float(v) if t == 5 else _value(t, v, schema)
    return out


def parse_reply(reply: list, schema: _Schema) -> list[dict]:
    """A compact GRAPH.QUERY reply ([header, rows, statistics], or statistics alone) as rows of
    plain data keyed by column name. Raises _StaleSchema when the names need a refresh."""
    if len(reply) < 3:
        return []
    names = [h[1] for h in reply[0]]
    rows = []
    for row in reply[1]:
        rows.append(dict(zip(names, [v if t == 2 or t == 3 else float(v) if t == 5 else _value(t, v, schema)
                                     for t, v in row])))
    return rows


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


def connection_pool(url: str, password: str | None = None) -> redis.BlockingConnectionPool:
    """A pool where a burst of concurrent queries waits for a free connection instead of
    failing with "Too many connections" (FalkorDB runs a few query threads anyway)."""
    if url.startswith("falkor://"):
        url = "redis://" + url[len("falkor://"):]
    elif url.startswith("falkors://"):
        url = "rediss://" + url[len("falkors://"):]
    # redis-py would cut any reply after 5 s; long loads and exports are legitimate here.
    return redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=60, socket_timeout=3600, socket_connect_timeout=5,
        decode_responses=True, **({"password": password} if password else {}))


class FalkorStore(Store):
    engine = "falkordb"

    def __init__(self, db: FalkorDB, graph: str, server: EmbeddedFalkorDB | None = None,
                 readonly_url: str | None = None) -> None:
        super().__init__()
        self.db = db
        self.graph_name = graph
        self.graph = db.select_graph(graph)
        self.server = server
        self.schema = _Schema()
        # Where untrusted Cypher runs: the embedded primary's replica, or a configured one.
        self.replica = server.replica() if server is not None else None
        self._readonly_url = readonly_url
        self._sandbox: tuple[redis.Redis, _Schema] | None = None
        self._sandbox_lock = asyncio.Lock()
        self._replica_start: asyncio.Future | None = None

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
            db = FalkorDB(connection_pool=connection_pool(url, server.password if server else None))
            await db.connection.ping()
            store = cls(db, settings.graph, server, settings.falkordb_readonly_url)
            # A write creates the graph key, so read-only queries on a new graph see an empty
            # graph instead of FalkorDB's "empty key" error.
            await store.graph.query("RETURN 1")
        except (rex.RedisError, OSError, ValueError) as e:
            raise StoreUnavailable(f"cannot reach FalkorDB at {url}: {e}") from e
        return store

    async def _run(self, text: str, params: dict[str, Any], *, write: bool, timeout_ms: int | None) -> list[dict]:
        return await self._query(self.db.connection, self.schema, text, params, write=write, timeout_ms=timeout_ms)

    async def _query(self, conn: redis.Redis, schema: _Schema, text: str, params: dict[str, Any], *, write: bool,
                     timeout_ms: int | None) -> list[dict]:
        params = without_nul(params)
        # The command falkordb-py's Graph.query sends (its parameter header too), the reply
        # parsed here (see _value).
        command: list[Any] = ["GRAPH.QUERY" if write else "GRAPH.RO_QUERY", self.graph_name,
                              self.graph._build_params_header(params) + text if params else text, "--compact"]
        if timeout_ms is not None:
            command += ["timeout", int(timeout_ms)]
        try:
            reply = await conn.execute_command(*command)
            for part in (reply[0], reply[-1]):  # an error in the query, or while running it
                if isinstance(part, rex.ResponseError):
                    raise part
        except rex.ResponseError as e:
            if "timed out" in str(e).lower():
                raise QueryError(f"the query exceeded its time limit of {timeout_ms} ms") from e
            raise QueryError(f"falkordb: {e}") from e
        try:
            return parse_reply(reply, schema)
        except _StaleSchema:
            await self._refresh_schema(conn, schema)
            return parse_reply(reply, schema)

    async def _run_untrusted(self, text: str, params: dict[str, Any], timeout_ms: int) -> list[dict]:
        """On the read replica: a crash there leaves the serving store alone."""
        conn, schema = await self._replica_connection()
        try:
            return await self._query(conn, schema, text, params, write=False, timeout_ms=timeout_ms)
        except (rex.ConnectionError, ConnectionError, OSError) as e:
            if self.replica is not None and not await asyncio.to_thread(self.replica.is_running):
                log.warning("a read-only query stopped the FalkorDB read replica; it is restarted. Query: %r", text)
                raise QueryError("this query crashed the database's read-only replica (a FalkorDB defect); the "
                                 "graph and the API are unaffected and the replica is restarting") from e
            raise QueryError(f"the answer was larger than {ReadReplica.MAX_REPLY_MB} MiB, or the read replica "
                             f"dropped the connection: {e}") from e

    REPLICA_WAIT_S = 20.0  # how long a request waits for a replica being started

    def _start_replica(self) -> None:
        self.replica.start()
        self.replica.prepare()

    async def _prepare_untrusted(self) -> None:
        await self._replica_connection()

    async def _replica_connection(self) -> tuple[redis.Redis, _Schema]:
        async with self._sandbox_lock:
            if self.replica is not None:
                if not await asyncio.to_thread(self.replica.ready):
                    # Starting it copies the whole graph (minutes for the demo's): in the
                    # background, so a request waits a little and then says to retry.
                    if self._replica_start is None or self._replica_start.done():
                        self._replica_start = asyncio.ensure_future(asyncio.to_thread(self._start_replica))
                    done, _ = await asyncio.wait({self._replica_start}, timeout=self.REPLICA_WAIT_S)
                    if not done:
                        raise QueryError("the read-only replica that power users' Cypher runs on is starting "
                                         "(it copies the graph first): retry in a minute")
                    self._replica_start.result()
                url = self.replica.url
            elif self._readonly_url:
                url = self._readonly_url
            else:
                raise QueryError("power users' Cypher runs on a read replica, and none is configured for this "
                                 "external FalkorDB: set NEUROGRAPH_FALKORDB_READONLY_URL to a replica of it")
            if self._sandbox is None:
                pool = connection_pool(url)
                self._sandbox = (redis.Redis(connection_pool=pool), _Schema())
            return self._sandbox

    async def _refresh_schema(self, conn: redis.Redis, schema: _Schema) -> None:
        """Names of every relationship type and property key, by index (a graph only appends
        new ones, so an index seen before keeps its name until the graph is deleted)."""
        names = []
        for proc in ("db.relationshipTypes", "db.propertyKeys"):
            reply = await conn.execute_command("GRAPH.RO_QUERY", self.graph_name, f"CALL {proc}()", "--compact")
            names.append([row[0][1] for row in reply[1]])
        schema.relations, schema.properties = names

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

    @property
    def _stamp_key(self) -> str:
        # Beside the graph, not in it: whole-graph reads and GRAPH.DELETE leave it alone.
        return f"neurograph:stamp:{self.graph_name}"

    async def read_stamp(self) -> str:
        value = await self.db.connection.get(self._stamp_key)
        return value.decode() if isinstance(value, bytes) else (value or "")

    async def _write_stamp(self, stamp: str) -> None:
        await self.db.connection.set(self._stamp_key, stamp)

    # Neighbour lists: a hash beside the graph, unit key -> list (neurograph/neighbours.py).
    keeps_neighbour_lists = True
    _K_FIELD = "\0k"  # edges kept per group: not a unit key

    @property
    def _lists_key(self) -> str:
        return f"neurograph:neighbours:{self.graph_name}"

    async def neighbour_lists(self, keys: list[str]) -> tuple[int, list[str | None]] | None:
        values = await self.db.connection.hmget(self._lists_key, [self._K_FIELD, *keys])
        text = [v.decode() if isinstance(v, bytes) else v for v in values]
        return int(text[0] or 0), text[1:]

    async def neighbour_list_units(self) -> set[str]:
        keys = await self.db.connection.hkeys(self._lists_key)
        return {x.decode() if isinstance(x, bytes) else x for x in keys} - {self._K_FIELD}

    async def put_neighbour_lists(self, k: int, lists: dict[str, str]) -> None:
        await self.db.connection.hset(self._lists_key, mapping={self._K_FIELD: k, **lists})

    async def forget_neighbour_lists(self, keys: list[str] | None = None) -> None:
        if keys is None:
            await self.db.connection.delete(self._lists_key)
        elif keys:
            for i in range(0, len(keys), 10_000):
                await self.db.connection.hdel(self._lists_key, *keys[i:i + 10_000])

    async def compact(self) -> None:
        """Rewrite the AOF in the background: a restart then loads a snapshot instead of
        replaying every batch of the load."""
        try:
            await self.db.connection.execute_command("BGREWRITEAOF")
        except rex.ResponseError as e:  # one already running is fine
            if "already in progress" not in str(e):
                raise QueryError(f"falkordb: {e}") from e

    async def _drop(self) -> None:
        self.schema = _Schema()  # a new graph numbers its names afresh
        if self._sandbox is not None:
            self._sandbox = (self._sandbox[0], _Schema())
        try:
            await self.graph.delete()
        except rex.ResponseError:
            pass  # no graph yet
        await self.forget_neighbour_lists()

    async def close(self) -> None:
        await self.db.connection.aclose()
        if self._sandbox is not None:
            await self._sandbox[0].aclose()
