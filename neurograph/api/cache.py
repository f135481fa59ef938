"""A response cache for GraphQL reads: the graph is read-mostly, so the same query with the
same variables is answered from memory for ``ttl`` seconds.

Only successful queries are cached (no errors, no mutations). A mutation through this app
clears the cache at once; a load by another process (the CLI) shows after at most ``ttl``.

    app = ResponseCache(graphql_app, max_entries=1024, ttl=10.0)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from functools import lru_cache

import orjson
from graphql import GraphQLError, OperationDefinitionNode, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@lru_cache(maxsize=256)
def _is_query(text: str, operation_name: str | None) -> bool:
    try:
        doc = parse(text)
    except GraphQLError:
        return False
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
    return bool(ops) and all(o.operation.value == "query" for o in ops)


class ResponseCache:
    """ASGI wrapper around the GraphQL endpoint: POSTed JSON reads are answered from an LRU.

        cached = ResponseCache(GraphQL(schema), max_entries=1024, ttl=10.0)
        cached.clear()   # e.g. after a bulk load in the same process
    """

    def __init__(self, app: ASGIApp, *, max_entries: int = 1024, ttl: float = 10.0,
                 max_body: int = 2 * 1024 * 1024) -> None:
        self.app = app
        self.max_entries = max_entries
        self.ttl = ttl
        self.max_body = max_body  # larger responses are not kept
        self._entries: OrderedDict[bytes, tuple[float, bytes, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._entries.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.max_entries <= 0:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            req = orjson.loads(body)
            query = req.get("query") if isinstance(req, dict) else None
            op_name = req.get("operationName") if isinstance(req, dict) else None
        except ValueError:  # orjson's JSONDecodeError, invalid UTF-8 included
            query, op_name = None, None
        cacheable = isinstance(query, str) and _is_query(query, op_name if isinstance(op_name, str) else None)
        now = time.monotonic()
        if cacheable:
            hit = self._entries.get(body)
            if hit is not None and now - hit[0] < self.ttl:
                self._entries.move_to_end(body)
                self.hits += 1
                await self._send(send, hit[1], hit[2])
                return
            self.misses += 1

        status = 0
        ctype = b"application/json"
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, ctype
            if message["type"] == "http.response.start":
                status = message["status"]
                ctype = dict(message.get("headers") or []).get(b"content-type", ctype)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        if not isinstance(query, str):
            return
        if not cacheable:
            if status == 200:
                self.clear()  # a mutation may have changed anything
            return
        out = b"".join(parts)
        if status == 200 and len(out) <= self.max_body and b'"errors"' not in out:
            self._entries[body] = (now, ctype, out)
            self._entries.move_to_end(body)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    @staticmethod
    async def _send(send: Send, ctype: bytes, out: bytes) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})
