"""GraphQL over HTTP as the spec (graphql.github.io/graphql-over-http) and other clients expect
it, around the GraphQL endpoint, and read-only CORS for the whole API.

    Route("/graphql", GraphQLOverHTTP(ResponseCache(GraphQL(schema))), methods=["GET", "POST"])
    Middleware(ReadOnlyCORS)   # Access-Control-Allow-Origin: * (writes still need the key)

``GraphQLOverHTTP``:

* **Request errors are GraphQL errors in JSON.** A body that is not JSON, not an object, or
  whose ``query`` is missing or not a string, or whose ``variables`` / ``extensions`` are not
  objects (a string ``variables``), and a GET without ``query``: 400 with
  ``{"errors": [{"message": …}]}``, never ``text/plain``.
* **``application/graphql-response+json``** when the client accepts it (ahead of
  ``application/json``): a request that could not run (a document that does not parse or
  validate, variables that do not fit) is then a 400 without ``data``; with
  ``application/json`` it stays a 200, as the spec asks.
* **GET answers can be cached**: ``ETag`` (a hash of the answer) and ``Cache-Control``;
  ``If-None-Match`` gets a 304. Only answers without errors.
* **gzip** for answers over 1 KiB to clients that accept it (answers resolved live included;
  the response cache's gzipped pages pass through as they are).
* **Batches**: a POST body that is a JSON array of requests (as Apollo's BatchHttpLink sends)
  is answered with an array of results, one per operation, each with its own errors. At most
  ``max_batch`` operations (``NEUROGRAPH_GRAPHQL_MAX_BATCH``); each runs as a request of its
  own through the endpoint (response cache, depth / alias / cost limits), all at once, and each
  is bounded by the request's time limit: one out of time gets a time-limit error in its own
  result, the others keep theirs. GET stays one operation.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from typing import Any

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store.base import request_deadline
from .asgi import Captured, read_body, replay_body

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
GZIP_MIN_BYTES = 1024
MAX_BATCH = 10
# A batch answers this long before the request's own deadline, so an operation out of time
# becomes an error in its result rather than a 504 for the whole batch.
BATCH_MARGIN_S = 0.1


def preferred_media(accept: str | None) -> str:
    """The answer's media type for an Accept header: graphql-response+json when the client
    ranks it at least as high as application/json, else application/json (also for none, */*)."""
    if not accept:
        return JSON
    best: tuple[float, int] | None = None
    choice = JSON
    for i, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media in (GRAPHQL_RESPONSE, JSON) and q > 0:
            rank = (q, -i)
            if best is None or rank > best:
                best, choice = rank, media
    return choice


def request_error(body: Any) -> str | None:
    """What is wrong with a GraphQL request's parameters (a decoded POST body), or None."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object with a string `query`"
    query = body.get("query")
    if query is None:
        return "the request has no `query`: send {\"query\": \"{ models { name } }\"}"
    if not isinstance(query, str):
        return "`query` must be a string holding the GraphQL document"
    name = body.get("operationName")
    if name is not None and not isinstance(name, str):
        return "`operationName` must be a string or null"
    for field in ("variables", "extensions"):
        value = body.get(field)
        if value is not None and not isinstance(value, dict):
            hint = " (a JSON object, not a string holding one)" if isinstance(value, str) else ""
            return f"`{field}` must be an object or null{hint}"
    return None


def _get_error(params: QueryParams) -> str | None:
    body: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
    for field in ("variables", "extensions"):
        raw = params.get(field)
        if raw:
            try:
                body[field] = orjson.loads(raw)
            except ValueError:
                return f"`{field}` must be URL-encoded JSON (an object)"
    return request_error(body)


def _is_request_failure(result: Any) -> bool:
    """An answer of a request that did not run: errors, no data, none of them tied to a field
    (a parse, validation or variable error; a field error carries the field's path)."""
    if not isinstance(result, dict) or not result.get("errors") or result.get("data") is not None:
        return False
    return all(isinstance(e, dict) and not e.get("path") for e in result["errors"])


def _without_data(result: bytes) -> bytes:
    decoded = orjson.loads(result)
    if _is_request_failure(decoded):
        decoded.pop("data", None)
        return orjson.dumps(decoded)
    return result


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _without(headers: list[tuple[bytes, bytes]], *names: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() not in names]


class GraphQLOverHTTP:
    """Wraps the GraphQL endpoint's ASGI app (see the module docstring).

        endpoint = GraphQLOverHTTP(graphql_app, max_age=60)
    """

    def __init__(self, app: ASGIApp, *, max_age: int = 60, gzip_min: int = GZIP_MIN_BYTES,
                 max_batch: int = MAX_BATCH) -> None:
        self.app = app
        self.max_age = max_age
        self.gzip_min = gzip_min
        self.max_batch = max_batch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        media = preferred_media(headers.get("accept"))
        method = scope["method"]
        if method == "GET":
            params = QueryParams(scope.get("query_string", b"").decode("latin-1"))
            if "query" not in params and "text/html" in headers.get("accept", ""):
                await self.app(scope, receive, send)  # a browser: GraphiQL
                return
            problem = _get_error(params)
            if problem:
                await self._error(send, media, problem)
                return
            inner_receive = receive
        else:
            body = await read_body(receive)
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype in ("", JSON, GRAPHQL_RESPONSE) or ctype.endswith("+json"):
                try:
                    decoded = orjson.loads(body)
                except ValueError as e:
                    await self._error(send, media, f"the request body is not valid JSON ({e})")
                    return
                if isinstance(decoded, list):
                    await self._batch(scope, headers, send, media, decoded)
                    return
                problem = request_error(decoded)
                if problem:
                    await self._error(send, media, problem)
                    return
            inner_receive = replay_body(body, receive)

        answer = Captured()
        await self.app(scope, inner_receive, answer)
        await self._finish(scope, headers, send, media, answer.status or 200, answer.headers, answer.body)

    async def _finish(self, scope: Scope, req: Headers, send: Send, media: str, status: int,
                      headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        ctype = (_header(headers, b"content-type") or b"").decode("latin-1")
        encoded = _header(headers, b"content-encoding") is not None
        errors = False
        if ctype.startswith(JSON):
            # A gzipped answer is one the response cache kept, and it keeps none with errors.
            errors = not encoded and b'"errors"' in body
            raw = body
            if errors and media == GRAPHQL_RESPONSE and status == 200:
                result = orjson.loads(raw)
                if _is_request_failure(result):  # the request did not run: 400, no data entry
                    status = 400
                    result.pop("data", None)
                    body, encoded = orjson.dumps(result), False
                    headers = _without(headers, b"content-encoding")
            headers = _without(headers, b"content-type") + [(b"content-type", f"{media}; charset=utf-8".encode())]
        if scope["method"] == "GET" and status == 200 and ctype.startswith(JSON) and not errors:
            tag = b'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'
            headers = _without(headers, b"etag", b"cache-control") + [
                (b"etag", tag), (b"cache-control", f"public, max-age={self.max_age}".encode())]
            if tag in [t.strip().encode() for t in req.get("if-none-match", "").split(",")]:
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", tag), (b"cache-control", f"public, max-age={self.max_age}".encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
        if not encoded and len(body) >= self.gzip_min and "gzip" in req.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers = _without(headers, b"vary") + [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
        headers = _without(headers, b"content-length") + [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _batch(self, scope: Scope, req: Headers, send: Send, media: str, ops: list[Any]) -> None:
        if not ops:
            await self._error(send, media, "the batch is empty: send at least one operation")
            return
        if len(ops) > self.max_batch:
            await self._error(send, media, f"a batch of {len(ops)} operations is over the limit of {self.max_batch} "
                                           "(NEUROGRAPH_GRAPHQL_MAX_BATCH): split it into smaller batches")
            return
        results = await asyncio.gather(*(self._operation(scope, op) for op in ops))
        if media == GRAPHQL_RESPONSE:  # an operation that did not run has no data entry, as alone
            results = [_without_data(r) if b'"errors"' in r else r for r in results]
        await self._finish(scope, req, send, media, 200, [(b"content-type", JSON.encode())],
                           b"[" + b",".join(results) + b"]")

    async def _operation(self, scope: Scope, op: Any) -> bytes:
        """One operation of a batch, run through the endpoint as a request of its own; its
        result as JSON bytes (a request error or a time-limit error included)."""
        problem = request_error(op)
        if problem:
            return orjson.dumps({"errors": [{"message": problem}]})
        body = orjson.dumps(op)
        keep = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-length", b"accept", b"accept-encoding")]
        sub = {**scope, "headers": keep + [(b"content-length", str(len(body)).encode()), (b"accept", JSON.encode())]}
        answer = Captured()
        deadline = request_deadline.get()
        left = None if deadline is None else max(0.0, deadline - time.monotonic() - BATCH_MARGIN_S)
        try:
            await asyncio.wait_for(self.app(sub, replay_body(body, _never), answer), left)
        except asyncio.TimeoutError:
            limit = f" of {left + BATCH_MARGIN_S:.3g} s" if left is not None else ""
            return orjson.dumps({"errors": [{"message": f"the operation exceeded its request's time limit{limit}",
                                             "extensions": {"code": "TIMEOUT"}}]})
        out = answer.body
        try:
            orjson.loads(out)
        except ValueError:  # a plain-text refusal by the view: still a GraphQL error in JSON
            return orjson.dumps({"errors": [{"message": out.decode("utf-8", "replace") or f"HTTP {answer.status}"}]})
        return out

    @staticmethod
    async def _error(send: Send, media: str, message: str) -> None:
        body = orjson.dumps({"errors": [{"message": message}]})
        await send({"type": "http.response.start", "status": 400, "headers": [
            (b"content-type", f"{media}; charset=utf-8".encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _never() -> Message:
    """The receive of a batch's operations after their body: they share no connection to watch."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


READ_PATHS = ("/graphql", "/api")


class ReadOnlyCORS:
    """``Access-Control-Allow-Origin: *`` on the GraphQL and REST endpoints, as DeepDecipher
    sends for its read API: any web page may read the graph. Writes (and the model worker's
    fields) still need the API key: a cross-origin request is never trusted as a loopback client
    (see app.authorized), so a page a user has open cannot write through their local server.

        Middleware(ReadOnlyCORS)          # when no NEUROGRAPH_CORS_ORIGINS is configured
    """

    def __init__(self, app: ASGIApp, *, max_age: int = 600) -> None:
        self.app = app
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(READ_PATHS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", b"content-type, accept, x-api-key"),
                (b"access-control-max-age", str(self.max_age).encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _without(list(message.get("headers") or []),
                                                          b"access-control-allow-origin")
                           + [(b"access-control-allow-origin", b"*")]}
            await send(message)

        await self.app(scope, receive, with_cors)


def cross_origin(headers: Headers) -> bool:
    """Whether a request comes from a web page of another origin (its Origin is not this host)."""
    origin = headers.get("origin")
    if not origin:
        return False
    host = headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") != host
