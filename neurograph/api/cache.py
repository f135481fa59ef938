"""Cached answers to GraphQL reads, kept under the graph's change stamp.

The graph is read-mostly: a read with the same variables gets the same answer until something
writes, and every write replaces the store's stamp (``Store.bump_stamp``). Answers are kept
under the stamp they were made with, so a changed graph is never answered from the cache. The
stamp is read again at most every ``check_every`` seconds (a load by another process shows
within that), and at once after a write through this process's store (a mutation).

Two tiers:

- memory: an LRU of recent answers, per process;
- pages (optional): :class:`PageStore`, a persistent store on disk shared by the server's
  processes and kept across restarts. ``neurograph pages`` fills it with every neuron's page
  beforehand, as Neuroscope served pre-rendered pages: a researcher going from neuron to
  neuron is answered at the speed of a static file, any other query is resolved live (and
  kept).

The key is the operation (its normalised text and name) and the variables; only successful
queries are kept (no errors, no mutations). On disk answers are gzipped (a demo neuron page,
~85 KB of JSON, keeps ~33 KB) and sent so to clients that accept gzip, as browsers do.

    app = ResponseCache(graphql_app, pages=PageStore(data_dir / "pages" / graph))
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode, parse, print_ast
from starlette.types import ASGIApp, Receive, Scope, Send

from .asgi import Captured, read_body, replay_body

log = logging.getLogger(__name__)
STALE_HEADER = b"x-neurograph-stale"
RENDERER = "neurograph.page_renderer"  # ASGI scope key of the app's own page renderer's requests (pages.py)


@lru_cache(maxsize=256)
def read_operation(text: str, operation_name: str | None) -> str | None:
    """The normalised text of a document whose chosen operation(s) only read; None for
    mutations and for text that does not parse (the app answers those with errors)."""
    try:
        doc = parse(text)
    except GraphQLError:
        return None
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
    if not ops or any(o.operation.value != "query" for o in ops):
        return None
    return print_ast(doc)


def request_key(query: Any, operation_name: Any, variables: Any) -> str | None:
    """The cache key of a GraphQL request (a JSON body's fields), None when it is not a read.

        >>> request_key("{ models { name } }", None, {}) == request_key("{models{name}}", None, None)
        True
        >>> request_key("mutation { x }", None, {}) is None
        True
    """
    if not isinstance(query, str) or not (operation_name is None or isinstance(operation_name, str)):
        return None
    normal = read_operation(query, operation_name)
    if normal is None:
        return None
    try:
        vars_ = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    h = hashlib.blake2b(normal.encode(), digest_size=20)
    h.update(b"\0" + (operation_name or "").encode() + b"\0" + vars_)
    return h.hexdigest()


@lru_cache(maxsize=1)
def answer_code_version() -> str:
    """A digest of what makes answers besides the graph: the package's Python source and the
    Cypher and GraphQL text. Pages kept on disk under another one are dropped, so an upgrade
    never serves what the old code answered (a fix to how a neuron page reads its quantiles
    stayed invisible on every pre-rendered page until the graph changed).

        >>> len(answer_code_version())
        16
    """
    from ..resources import CYPHER_DIR, GRAPHQL_DIR

    package = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=8)
    for root, pattern in ((package, "*.py"), (CYPHER_DIR, "*.cypher"), (GRAPHQL_DIR, "*.graphql")):
        for path in sorted(root.rglob(pattern)):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class PageStore:
    """Answers on disk (SQLite through diskcache), gzipped, under the stamp they were made with.

    When it meets a stamp other than the one its entries were made under, or entries made by
    another version of the code (:func:`answer_code_version`), it drops them all: they can never
    be served again.

        pages = PageStore(Path("data/pages/neurograph"), size_limit_mb=4096)
        pages.put(stamp, key, b"application/json", gzip_body); pages.get(stamp, key)
    """

    def __init__(self, directory: Path, *, size_limit_mb: int = 4096, code_version: str | None = None) -> None:
        import diskcache

        # how values are kept and by which code: a store written otherwise is cleared
        self.format = f"gzip-1:{code_version or answer_code_version()}"
        self.directory = Path(directory)
        # One SQLite file: no value is big enough to be worth a file of its own.
        self.cache = diskcache.Cache(str(self.directory), size_limit=size_limit_mb * 2**20,
                                     disk_min_file_size=2**30, eviction_policy="least-recently-stored")

    def get(self, stamp: str, key: str) -> tuple[bytes, bytes] | None:
        """(content type, gzipped body) or None."""
        value = self.cache.get(f"{stamp}:{key}")
        if value is None:
            return None
        ctype, _, gz = value.partition(b"\0")
        return ctype, gz

    def put(self, stamp: str, key: str, ctype: bytes, gz: bytes) -> None:
        self.cache.set(f"{stamp}:{key}", ctype + b"\0" + gz)

    def __contains__(self, stamp_key: tuple[str, str]) -> bool:
        return f"{stamp_key[0]}:{stamp_key[1]}" in self.cache

    def use_stamp(self, stamp: str) -> None:
        """Forget every answer made under another stamp (or kept in another format)."""
        if self.cache.get("stamp") != f"{self.format}:{stamp}":
            self.cache.clear()
            self.cache.set("stamp", f"{self.format}:{stamp}")

    def current_stamp(self) -> str | None:
        """The stamp the kept answers were made under (None when empty)."""
        value = self.cache.get("stamp")
        prefix = f"{self.format}:"
        return value[len(prefix):] if isinstance(value, str) and value.startswith(prefix) else None

    def __len__(self) -> int:
        return len(self.cache) - ("stamp" in self.cache)

    def close(self) -> None:
        self.cache.close()


class ResponseCache:
    """ASGI wrapper around the GraphQL endpoint: POSTed JSON reads are answered from memory,
    else from ``pages`` on disk, else by the app (and kept in both).

        cached = ResponseCache(GraphQL(schema), max_entries=1024, check_every=2.0)
    """

    def __init__(self, app: ASGIApp, *, max_entries: int = 1024, check_every: float = 2.0,
                 max_body: int = 2 * 1024 * 1024, pages: PageStore | None = None) -> None:
        self.app = app
        self.max_entries = max_entries
        self.check_every = check_every
        self.max_body = max_body  # larger responses are not kept
        self.pages = pages
        # key -> (stamp, content type, body, gzipped body); either body may be missing
        self._entries: OrderedDict[str, tuple[str, bytes, bytes | None, bytes | None]] = OrderedDict()
        self._stamp: str | None = None
        self._next_check = 0.0
        self._local_writes = -1  # the store's count of its own writes when the stamp was read
        self.stale = False  # the store is down: kept answers are served, marked, nothing is kept
        self.hits = 0
        self.page_hits = 0
        self.misses = 0

    async def stamp(self, store: Any) -> str | None:
        """The graph's stamp, read again when ``check_every`` passed or this process wrote.

        When the store cannot say (it is down), the last stamp known (or the one the pages on
        disk were made under) is returned and ``stale`` is set: answers kept under it are still
        served, marked as such, and nothing new is kept; None when there is none."""
        now = time.monotonic()
        if self._stamp is None or self.stale or now >= self._next_check or store.local_writes != self._local_writes:
            try:
                stamp = await store.read_stamp()
            except Exception as e:  # noqa: BLE001 - any engine's connection error
                if not self.stale:
                    log.warning("cannot read the graph's stamp (%s): serving kept answers only, marked stale", e)
                self.stale = True
                if self._stamp is None and self.pages is not None:
                    self._stamp = await asyncio.to_thread(self.pages.current_stamp)
                return self._stamp
            if self.stale:
                log.warning("the graph's stamp can be read again: answers are live again")
            self.stale = False
            self._next_check = now + self.check_every
            self._local_writes = store.local_writes
            if stamp != self._stamp:
                self._entries.clear()
                if self.pages is not None:
                    await asyncio.to_thread(self.pages.use_stamp, stamp)
                self._stamp = stamp
        return self._stamp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.max_entries <= 0:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        replay = replay_body(body, receive)

        try:
            req = orjson.loads(body)
        except ValueError:  # orjson's JSONDecodeError, invalid UTF-8 included
            req = None
        key = request_key(req.get("query"), req.get("operationName"), req.get("variables")) \
            if isinstance(req, dict) else None
        stamp = await self.stamp(scope["app"].state.store) if key is not None else None
        if stamp is None:
            key = None
        own = scope.get(RENDERER) is not None  # the app's own page renderer: kept on disk only, not counted
        if key is not None:
            hit = None if own else self._entries.get(key)
            if hit is not None and hit[0] == stamp:
                self.hits += 1  # moved to the LRU's end by _remember below
            else:
                kept = self.pages.get(stamp, key) if self.pages is not None else None
                hit = (stamp, kept[0], None, kept[1]) if kept is not None else None
                if hit is not None:
                    self.page_hits += 1
            if hit is not None:
                _, ctype, raw, gz = hit
                stale = self.stale
                if gz is not None and _accepts_gzip(scope):
                    await self._send(send, ctype, gz, gzipped=True, stale=stale)
                else:
                    raw = raw if raw is not None else gzip.decompress(gz)
                    await self._send(send, ctype, raw, stale=stale)
                self._remember(key, stamp, ctype, raw, gz)
                return
            self.misses += not own
            if self.stale:
                key = None  # the app answers (with its clear error); nothing is kept

        answer = Captured(forward=send)  # sent on as it comes, kept to remember
        await self.app(scope, replay, answer)
        if key is None:
            return
        out, ctype = answer.body, answer.header(b"content-type") or b"application/json"
        if answer.status == 200 and len(out) <= self.max_body and b'"errors"' not in out:
            gz = None
            if self.pages is not None:
                # level 1: a third of the size at ~1 ms per 85 KB (level 6: a quarter, 4 ms)
                gz = gzip.compress(out, compresslevel=1, mtime=0)
                self.pages.put(stamp, key, ctype, gz)
            if not own:
                self._remember(key, stamp, ctype, out, gz)

    def _remember(self, key: str, stamp: str, ctype: bytes, raw: bytes | None, gz: bytes | None) -> None:
        self._entries[key] = (stamp, ctype, raw, gz)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    @staticmethod
    async def _send(send: Send, ctype: bytes, out: bytes, *, gzipped: bool = False, stale: bool = False) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(out)).encode())]
        if gzipped:
            headers += [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
        if stale:  # the graph could not be asked: this is the answer kept from before
            headers.append((STALE_HEADER, b"store-unavailable"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False
