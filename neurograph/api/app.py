"""The Starlette application: GraphQL (with GraphiQL) at /graphql, the DeepDecipher REST routes,
/healthz, and the web UI as static files at /.

    app = create_app(Settings.from_env())          # opens the store on startup
    uvicorn.run(app, host="127.0.0.1", port=8000)

Security: writes (the ``addExplanation`` mutation) need the ``x-api-key`` header to match
``settings.api_key``; with no key configured, only loopback clients may write. Serving beyond
loopback therefore leaves writing disabled unless NEUROGRAPH_API_KEY is set. Reads,
including read-only Cypher, are open.

GraphQL reads are answered from a cache kept under the graph's change stamp (see cache.py):
in memory, and on disk in ``<data_dir>/pages/<graph>`` where ``neurograph pages`` pre-renders
every neuron's page. A write through the app shows at once; a load by another process within
``check_every`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

from ..config import Settings
from ..errors import NeuroGraphError
from ..resources import GRAPHQL_DIR, WEB_DIR
from ..store import Store, open_store
from .cache import PageStore, ResponseCache
from .context import Context
from .deadline import RequestDeadline
from .graphql_http import GraphQLOverHTTP, ReadOnlyCORS, cross_origin
from .live import RateLimiter
from .pages import PagesReport, prerender, render_in_background
from .rest import routes as rest_routes
from .schema import schema as default_schema

# The SDL and the example operations, served at /operations/ (the UI's neuron page is one)
OPERATIONS_DIR = GRAPHQL_DIR
MAX_BODY_BYTES = 256 * 1024  # a GraphQL request is text: far below this
LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


class BodySizeLimit:
    """ASGI middleware: answer 413 with a JSON error when a request body exceeds ``max_bytes``.

        app = BodySizeLimit(app, max_bytes=256 * 1024)
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> Response:
        return JSONResponse({"errors": [{"message": f"request body too large: the limit is {self.max_bytes} bytes"}]},
                            status_code=413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        # Chunked bodies carry no length: count as they stream in, then answer 413 the same way.
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large()(scope, receive, send)


class _TooLarge(Exception):
    pass


class NeuroGraphQL(GraphQL):
    """Strawberry's ASGI view with NeuroGraph's per-request context (store, loaders, auth),
    reading and writing JSON with orjson: a neuron page's response took ~0.17 ms to encode
    with the json module, about a tenth of that with orjson."""

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # its JSONDecodeError is json's: Strawberry answers 400 the same

    def encode_json(self, data: object) -> bytes:
        try:
            return orjson.dumps(data)
        except TypeError:  # what orjson does not take (an int beyond 64 bits): the json module's way
            return json.dumps(data, separators=(",", ":")).encode()

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL from the web UI's vendor/ folder (web/graphiql.html), not from a CDN: it
        works offline. Strawberry's own page is the fallback where web/ is not shipped."""
        page = WEB_DIR / "graphiql.html"
        return page.read_text(encoding="utf-8") if page.is_file() else super().graphql_ide_html

    async def get_context(self, request: Any, response: Any) -> Context:
        app_state = request.app.state
        settings: Settings = app_state.settings
        return Context(store=app_state.store, settings=settings, authorized=authorized(request, settings),
                       request=request, response=response)


def authorized(request: Request, settings: Settings) -> bool:
    """May this request write? With a key configured: only with that key. Without: loopback only,
    and not from a web page of another origin (reads are open to any origin: CORS ``*``)."""
    if settings.api_key:
        given = request.headers.get("x-api-key", "")
        return hmac.compare_digest(given.encode(), settings.api_key.encode())
    host = request.client.host if request.client else ""
    return host in LOOPBACK and not cross_origin(request.headers)


async def healthz(request: Request) -> Response:
    """``ok`` while the store answers; ``degraded`` (503) while it does not, when only answers
    kept on disk are served, and (200) while a supervised server other than the store (the read
    replica) is being restarted."""
    store: Store | None = getattr(request.app.state, "store", None)
    supervisor = getattr(request.app.state, "supervisor", None)
    servers = supervisor.status() if supervisor is not None else {}
    try:
        ok = store is not None and await store.ping()
        error = None if ok else "store not reachable"
    except NeuroGraphError as e:
        ok, error = False, str(e)
    if not ok:
        return JSONResponse({"ok": False, "status": "degraded", "error": error, "servers": servers,
                             "serving": "answers kept on disk (pre-rendered pages) only"}, status_code=503)
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        servers["model worker"] = await worker.probe()
    status = "ok" if (supervisor is None or supervisor.healthy()) and (worker is None or worker.state == "up") \
        else "degraded"
    return JSONResponse({"ok": True, "status": status, "engine": store.engine, "servers": servers,
                         "pid": os.getpid()})  # which of the API processes answered


async def _run_worker(worker: Any, stop: asyncio.Event) -> None:
    """Start the model worker, keep it alive until ``stop``, then stop it."""
    try:
        try:
            await worker.start()
        except NeuroGraphError as e:
            logging.getLogger(__name__).error("the model worker did not start: %s", e)
        await worker.supervise(stop)
    finally:
        await worker.stop()


def page_store(settings: Settings) -> PageStore | None:
    """The on-disk tier of the response cache for this graph (None when turned off)."""
    if settings.page_cache_mb <= 0:
        return None
    return PageStore(settings.data_dir / "pages" / settings.graph, size_limit_mb=settings.page_cache_mb)


def freeze_startup_objects() -> None:
    """Move everything alive now (modules, the schema, the store) out of the garbage
    collector's sight. Requests free their own objects by reference counting (no cycles, see
    execution_context.py), but under concurrent load the objects of requests in flight get
    promoted and trigger full collections, and each of those walked the ~100k startup objects
    again: about half a millisecond per neuron page."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, store: Store | None = None, *,
               web_dir: Path | None = WEB_DIR, max_body_bytes: int = MAX_BODY_BYTES,
               cache_entries: int = 1024, check_every: float = 2.0, render_pages: bool = False,
               worker: Any = None, owner: bool = True, peers: Sequence[Any] = ()) -> Starlette:
    """The whole NeuroGraph HTTP application.

    ``store`` given: used as is and left open (tests). Otherwise opened from ``settings`` on
    startup and closed on shutdown. GraphQL reads are cached until the graph's stamp changes,
    read every ``check_every`` seconds (``cache_entries=0`` turns the cache off); answers are
    also kept on disk unless ``settings.page_cache_mb`` is 0; ``render_pages`` pre-renders every
    neuron's page there in the background while serving (see pages.py). ``worker`` (a
    ``neurograph.worker.WorkerProcess``) is started beside the app, supervised, and answers the
    fields that run the model (see live.py).

    ``peers`` (``processes.Peer``): more API processes on this server's listening socket, started
    once the store is open and supervised with it. A peer's own app has ``owner=False``: it opens
    the store without starting FalkorDB, supervises nothing and renders no pages, and its
    ``worker`` is a ``SharedWorker`` (the owner's, over its socket).
    """
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = store is None
        app.state.store = store if store is not None else await open_store(settings, start=owner, schema=owner)
        if own:  # a serving process: what exists now lives as long as it does
            freeze_startup_objects()
        renderer, stop = None, asyncio.Event()
        watcher = worker_task = None
        if worker is not None and owner:  # loads in the background: everything else serves meanwhile
            worker_task = asyncio.create_task(_run_worker(worker, stop))
        server = getattr(app.state.store, "server", None)
        # What this server runs once: the embedded FalkorDB it depends on, and its peers.
        supervised = [server, server.replica()] if own and owner and server is not None else []
        for peer in peers:
            await asyncio.to_thread(peer.start)
            supervised.append(peer)
        if supervised:
            from ..store.supervisor import Supervisor

            app.state.supervisor = Supervisor(supervised)
            watcher = asyncio.create_task(app.state.supervisor.run(stop))
        if render_pages and pages is not None and owner:  # through this app's own in-process client
            renderer = asyncio.create_task(render_in_background(app, stop))
        try:
            yield
        finally:
            if renderer is not None:
                stop.set()  # the page being made is finished (cancelling it mid-query leaves a mess)
                try:
                    await asyncio.wait_for(renderer, timeout=10)
                except asyncio.TimeoutError:
                    pass
            if watcher is not None or worker_task is not None:
                stop.set()
                for task in (watcher, worker_task):
                    if task is not None:
                        await task
            for peer in peers:  # after the supervisor: nothing starts them again
                await asyncio.to_thread(peer.stop)
            if own:
                await app.state.store.close()
            if pages is not None:
                pages.close()

    graphql_app = NeuroGraphQL(default_schema, graphql_ide="graphiql", allow_queries_via_get=True)
    pages = page_store(settings) if cache_entries > 0 else None
    cache = ResponseCache(graphql_app, max_entries=cache_entries, check_every=check_every, pages=pages)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/graphql", GraphQLOverHTTP(cache, max_batch=settings.graphql_max_batch), methods=["GET", "POST"]),
        *rest_routes,
    ]
    if OPERATIONS_DIR.is_dir():
        routes.append(Mount("/operations", StaticFiles(directory=str(OPERATIONS_DIR)), name="operations"))
    if web_dir is not None and Path(web_dir).is_dir():
        routes.append(Mount("/", StaticFiles(directory=str(web_dir), html=True), name="web"))
    middleware = [Middleware(BodySizeLimit, max_bytes=max_body_bytes),
                  Middleware(RequestDeadline, timeout_s=settings.request_timeout_ms / 1000)]
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST", "OPTIONS"],
                                     allow_headers=["content-type", "x-api-key"]))
    else:  # reads open to any web page, as DeepDecipher's API is; writes still need the key
        middleware.append(Middleware(ReadOnlyCORS))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    app.state.response_cache = cache
    app.state.worker = worker
    app.state.rate_limiter = RateLimiter(settings.model_requests_per_minute)
    if store is not None:  # usable before (or without) the lifespan, e.g. by ASGITransport
        app.state.store = store
    return app


async def render_pages(store: Store, settings: Settings, model: str, **kwargs: Any) -> PagesReport:
    """Pre-render ``model``'s neuron pages where no app is serving (``neurograph pages``, a
    benchmark): an app of its own on ``store``, its disk-store handle closed after; ``kwargs``
    as pages.prerender takes them.

        report = await render_pages(store, settings, "smollm2-135m", progress=True)
    """
    app = create_app(settings, store, web_dir=None)
    try:
        return await prerender(app, model, **kwargs)
    finally:
        pages = app.state.response_cache.pages
        if pages is not None:  # no lifespan runs here to close it
            pages.close()
