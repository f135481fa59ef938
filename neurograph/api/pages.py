"""Pre-rendered neuron pages: the web UI's neuron-page operation answered for every neuron of a
model ahead of time and kept in the API's on-disk cache (see cache.py), as Neuroscope served
a static page per neuron. Browsing then costs what serving a file costs; any other query is
resolved live.

The pages are requested from the app itself, through its in-process client (ASGI, no
socket, as Datasette's ``datasette.client``), so a kept answer is byte for byte what a live
request gets, and a serving app renders into its own cache. They are kept under the graph's
change stamp: any later write makes them unreachable, so a run stops at the first write it sees
(:class:`GraphChanged`) and the next run makes them again. Resumable: pages kept under the
current stamp are skipped. The most interesting neurons come first, so a server that renders in
the background (``neurograph serve --pages``) has the likeliest pages soonest.

    app = create_app(settings, store)
    report = await prerender(app, "smollm2-135m", progress=True)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from starlette.applications import Starlette

from ..errors import NeuroGraphError, NotFound, StoreUnavailable
from ..progress import progress_bar
from ..resources import GRAPHQL_DIR
from .cache import RENDERER, request_key

NEURON_PAGE = GRAPHQL_DIR / "neuron_page.graphql"
log = logging.getLogger(__name__)

# How long the graph must stay unwritten before the background renderer starts again after a
# write stopped it. The demo's background N2G writes every few minutes for ~2 h: pages made
# between its writes would be thrown away at the next one (the whole model's pages cost ~50 CPU
# min), so they wait for its end.
QUIET_S = 600.0


class GraphChanged(NeuroGraphError):
    """The graph was written while its pages were being made: the ``made`` pages are unreachable."""

    def __init__(self, made: int, todo: int):
        super().__init__(f"the graph changed while its pages were being made ({made} of {todo} made, now "
                         "unreachable): run `neurograph pages` again once it is not being written")
        self.made, self.todo = made, todo


@dataclass
class PagesReport:
    model: str
    neurons: int
    rendered: int  # made now
    kept: int  # already there under the current stamp
    seconds: float
    pages_per_second: float
    bytes_rendered: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def neuron_page_variables(model: str, layer: int, index: int) -> dict[str, Any]:
    """The variables the web UI sends for a neuron page (web/js/queries.js): the cache key."""
    return {"model": model, "layer": layer, "index": index}


async def prerender(app: Starlette, model: str, *, layers: list[int] | None = None, concurrency: int = 4,
                    progress: bool = False, stop: asyncio.Event | None = None) -> PagesReport:
    """Render and keep the neuron page of every neuron of ``model`` (of ``layers`` if given),
    asking ``app`` (create_app's, its store open) through its in-process client; once ``stop``
    is set, the pages being made are finished and no other is started. Raises
    :class:`GraphChanged` as soon as a write to the graph is seen (the cache reads the stamp again
    every few seconds and after this process's writes): the pages made are then unreachable."""
    cache = app.state.response_cache
    if cache.pages is None:
        raise NeuroGraphError("the on-disk page cache is off (NEUROGRAPH_PAGE_CACHE_MB=0): nothing to pre-render into")
    store = app.state.store
    t0 = time.perf_counter()
    coords = await store.query("model_neuron_coords", model=model)
    if not coords:
        raise NotFound(f"no neurons for model {model!r}: build or import it first")
    if layers is not None:
        wanted = set(layers)
        coords = [c for c in coords if c["layer"] in wanted]
    query = NEURON_PAGE.read_text()
    stamp = await cache.stamp(store)
    todo = []
    for c in coords:
        variables = neuron_page_variables(model, c["layer"], c["index"])
        if (stamp, request_key(query, None, variables)) not in cache.pages:
            todo.append(variables)
    rendered_bytes = 0
    changed = False

    async def as_renderer(scope: Any, receive: Any, send: Any) -> None:
        # marked in the ASGI scope (no HTTP client can set it): kept on disk, not in the
        # serving app's memory tier or its hit counts
        await app(scope | {RENDERER: True}, receive, send)

    transport = httpx.ASGITransport(app=as_renderer, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://pages", timeout=None) as client:
        with progress_bar(progress) as bar:
            task = bar.add_task(f"neuron pages of {model}", total=len(todo))
            queue: asyncio.Queue[dict] = asyncio.Queue()
            for v in todo:
                queue.put_nowait(v)

            async def worker() -> None:
                nonlocal rendered_bytes, changed
                while not queue.empty() and not (stop is not None and stop.is_set()) and not changed:
                    if await cache.stamp(store) != stamp:
                        changed = True
                        break
                    variables = queue.get_nowait()
                    r = await client.post("/graphql", content=orjson.dumps({"query": query, "variables": variables}),
                                          headers={"content-type": "application/json"})
                    body = r.json()
                    if r.status_code != 200 or body.get("errors"):
                        raise NeuroGraphError(f"the neuron page of {variables} failed: {body.get('errors') or r.status_code}")
                    rendered_bytes += len(r.content)
                    bar.advance(task)

            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    seconds = time.perf_counter() - t0
    rendered = len(todo) - queue.qsize()
    if changed or await store.read_stamp() != stamp:
        raise GraphChanged(rendered, len(todo))
    return PagesReport(model, len(coords), rendered, len(coords) - len(todo), round(seconds, 2),
                       round(rendered / seconds, 1) if seconds else 0.0, rendered_bytes)


async def render_in_background(app: Starlette, stop: asyncio.Event, *, concurrency: int = 1,
                               retry_every: float = 1.0, quiet_s: float = QUIET_S) -> None:
    """Every model's pages, one at a time beside the server's requests (``serve --pages``),
    until done or ``stop`` is set. While the store is unreachable it waits and then resumes
    where it stopped (made pages are kept). A write to the graph stops it (the pages made are
    unreachable); it starts again once the graph has not changed for ``quiet_s`` seconds (a
    background job writing every few minutes, such as the demo's N2G, has ended). Other
    failures are logged, never raised: the server goes on resolving pages live."""
    store = app.state.store
    while not stop.is_set():
        try:
            for row in await store.query("models"):
                if stop.is_set():
                    return
                name = row["m"]["name"]
                log.info("pre-rendering the neuron pages of %s in the background", name)
                report = await prerender(app, name, concurrency=concurrency, stop=stop)
                log.info("neuron pages of %s: %d rendered, %d already kept, %.0f s", name, report.rendered,
                         report.kept, report.seconds)
            return
        except asyncio.CancelledError:
            raise
        except GraphChanged as e:
            log.info("pre-rendering neuron pages paused: the graph changed (%d of %d pages made, now unreachable); "
                     "resuming once it has not changed for %.0f s", e.made, e.todo, quiet_s)
            await _until_quiet(store, stop, quiet_s)
        except Exception as e:  # noqa: BLE001 - the server must stay up; the log says why
            if not _store_down(e):
                log.warning("pre-rendering neuron pages stopped: %s", e)
                return
            log.warning("pre-rendering neuron pages paused, the store is unreachable (%s); resuming when it is back", e)
            while not stop.is_set():
                await _wait(stop, retry_every)
                try:
                    if await store.ping():
                        log.info("the store is back: pre-rendering neuron pages resumes")
                        break
                except Exception:  # noqa: BLE001 - still down
                    continue


async def _until_quiet(store: Any, stop: asyncio.Event, quiet_s: float) -> None:
    """Wait until the graph's stamp stays the same for ``quiet_s`` seconds (or ``stop`` is set)."""
    before = None
    while not stop.is_set():
        try:
            now = await store.read_stamp()
        except Exception:  # noqa: BLE001 - the store is down: the render's own retry handles it
            return
        if now == before:
            return
        before = now
        await _wait(stop, quiet_s)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


def _store_down(e: BaseException) -> bool:
    """Whether a failure came from the store being unreachable (also when a page's query failed
    on it and the app answered with that error)."""
    return isinstance(e, StoreUnavailable) or "not reachable" in str(e) or "unreachable" in str(e)
