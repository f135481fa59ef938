"""Pre-rendered neuron pages and the stamp-keyed response cache: kept pages are served byte
for byte as the live app answers them, and no write (by this process or another) lets a kept
answer be served afterwards."""

from __future__ import annotations

import json

import httpx
import pytest

from loaders.synthetic import write_synthetic_graph
from neurograph.api import create_app
from neurograph.api.app import render_pages
from neurograph.api.pages import NEURON_PAGE, neuron_page_variables
from neurograph.cli import main
from neurograph.errors import NotFound
from neurograph.store import open_store

MODEL = "pg"
QUERY = NEURON_PAGE.read_text()


@pytest.fixture
async def graph(store):
    return await write_synthetic_graph(store, MODEL, n_layers=3, d_mlp=8, n_heads=2, d_vocab=60, k=3, seed=3)


async def post(app, variables: dict, *, gzip: bool = True) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        # the body the web UI sends: JSON.stringify({query, variables})
        return await c.post("/graphql", content=json.dumps({"query": QUERY, "variables": variables}),
                            headers={"content-type": "application/json",
                                     "accept-encoding": "gzip" if gzip else "identity"})


async def test_prerender_keeps_every_page_and_resumes(store, settings, graph):
    report = await render_pages(store, settings, MODEL)
    assert (report.neurons, report.rendered, report.kept) == (24, 24, 0) and report.bytes_rendered > 24 * 1000
    again = await render_pages(store, settings, MODEL)
    assert (again.rendered, again.kept) == (0, 24)
    only = await render_pages(store, settings.with_(graph=settings.graph), MODEL, layers=[1])
    assert only.neurons == 8 and only.rendered == 0


async def test_a_kept_page_is_what_the_live_app_answers(store, settings, graph):
    await render_pages(store, settings, MODEL)
    app = create_app(settings, store)  # a fresh process: nothing in memory
    cache = app.state.response_cache
    v = neuron_page_variables(MODEL, 1, 5)
    kept = await post(app, v)  # httpx accepts gzip, as browsers do
    assert kept.status_code == 200 and cache.page_hits == 1 and cache.misses == 0
    assert kept.headers["content-encoding"] == "gzip" and int(kept.headers["content-length"]) < len(kept.content) / 2
    live = await post(create_app(settings.with_(page_cache_mb=0), store, cache_entries=0), v)
    assert kept.content == live.content
    plain = await post(create_app(settings, store), v, gzip=False)  # a client without gzip: the JSON itself
    assert "content-encoding" not in plain.headers and plain.content == live.content
    assert json.loads(kept.content)["data"]["neuron"]["key"] == f"{MODEL}/1/5"
    # other variables (a longer example list) are not a kept page: resolved live, then kept
    more = await post(app, {**v, "first": 30})
    assert more.status_code == 200 and cache.misses == 1


async def test_a_write_makes_kept_pages_unreachable(store, settings, graph):
    await render_pages(store, settings, MODEL)
    app = create_app(settings, store)
    cache = app.state.response_cache
    v = neuron_page_variables(MODEL, 2, 3)
    assert json.loads((await post(app, v)).content)["data"]["neuron"]["interest"] != 42.5
    await store.run("MATCH (n:Neuron {key: $k}) SET n.interest = 42.5", {"k": f"{MODEL}/2/3"}, write=True)
    assert json.loads((await post(app, v)).content)["data"]["neuron"]["interest"] == 42.5
    assert cache.misses == 1
    assert len(cache.pages) == 1  # the pages of the old graph are gone, the new answer kept


async def test_pages_kept_by_other_code_are_not_served(store, settings, graph, tmp_path):
    """An upgrade (other code, same graph) must not serve the old code's answers."""
    from neurograph.api.cache import PageStore, answer_code_version

    old = PageStore(tmp_path / "pages", code_version="old")
    old.use_stamp("s1")
    old.put("s1", "k", b"application/json", b"gz")
    assert old.get("s1", "k") == (b"application/json", b"gz") and old.current_stamp() == "s1"
    old.close()
    new = PageStore(tmp_path / "pages", code_version="new")
    assert new.current_stamp() is None  # while the store is down: nothing of the old code's is served
    new.use_stamp("s1")  # same graph
    assert new.get("s1", "k") is None and len(new) == 0
    new.close()
    # the real thing: pages rendered, then the app of another version answers live and keeps anew
    await render_pages(store, settings, MODEL)
    app = create_app(settings, store)
    app.state.response_cache.pages.close()
    app.state.response_cache.pages = PageStore(settings.data_dir / "pages" / settings.graph,
                                               code_version=answer_code_version() + "-upgraded")
    await post(app, neuron_page_variables(MODEL, 1, 5))
    cache = app.state.response_cache
    assert (cache.page_hits, cache.misses, len(cache.pages)) == (0, 1, 1)
    cache.pages.close()


async def test_a_write_by_another_process_shows_when_the_stamp_is_read_again(store, settings, graph):
    v = neuron_page_variables(MODEL, 0, 1)
    other = await open_store(settings)  # another process's connection: this app sees no local write
    try:
        for check_every, fresh in ((3600.0, False), (0.0, True)):
            app = create_app(settings, store, check_every=check_every)
            before = json.loads((await post(app, v)).content)["data"]["neuron"]["interest"]
            await other.run("MATCH (n:Neuron {key: $k}) SET n.interest = $x", {"k": f"{MODEL}/0/1", "x": before + 1},
                            write=True)
            after = json.loads((await post(app, v)).content)["data"]["neuron"]["interest"]
            # with an hour between readings the stamp is not read again: the kept answer stands
            assert after == (before + 1 if fresh else before)
    finally:
        await other.close()


async def test_prerender_errors_are_clear(store, settings, graph):
    with pytest.raises(NotFound, match="no neurons for model 'nope'"):
        await render_pages(store, settings, "nope")
    with pytest.raises(Exception, match="page cache is off"):
        await render_pages(store, settings.with_(page_cache_mb=0), MODEL)


async def test_pages_command(store, settings, graph, monkeypatch, capsys):
    monkeypatch.setenv("NEUROGRAPH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEUROGRAPH_GRAPH", settings.graph)
    assert await _in_thread(main, ["pages", MODEL, "--layers", "0", "2"]) == 0
    out = json.loads(capsys.readouterr().err)  # the CLI reports on stderr
    assert out["neurons"] == 16 and out["rendered"] == 16
    assert await _in_thread(main, ["pages", "nope"]) == 1
    assert "no neurons for model 'nope'" in capsys.readouterr().err


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.to_thread(fn, *args)


async def test_serve_renders_pages_in_the_background(store, settings, graph):
    import asyncio

    app = create_app(settings, store, render_pages=True)
    cache = app.state.response_cache
    async with app.router.lifespan_context(app):
        for _ in range(600):  # the server answers meanwhile; the pages fill up behind it
            if len(cache.pages) >= 24:
                break
            await asyncio.sleep(0.05)
        assert len(cache.pages) == 24
    v = neuron_page_variables(MODEL, 2, 7)
    assert (await post(app, v)).status_code == 200 and cache.page_hits == 1 and cache.misses == 0


async def test_a_stopped_prerender_finishes_the_page_in_hand_and_starts_no_other(store, settings, graph):
    import asyncio

    stop = asyncio.Event()
    stop.set()
    report = await render_pages(store, settings, MODEL, stop=stop)
    assert report.rendered == 0 and report.neurons == 24
    assert (await render_pages(store, settings, MODEL)).rendered == 24  # a later run does them all


async def test_a_write_stops_the_prerender_at_once(store, settings, graph):
    """Pages made under a stamp that a write replaced are never served: the render stops at the
    first write it sees instead of making the rest for nothing, and says how far it got."""
    import asyncio

    from neurograph.api.pages import GraphChanged, prerender

    app = create_app(settings, store, web_dir=None)
    cache = app.state.response_cache

    async def write_after_the_first_page():
        while len(cache.pages) < 1:
            await asyncio.sleep(0.002)
        await store.run("MATCH (n:Neuron {key: $k}) SET n.interest = 7.5", {"k": f"{MODEL}/0/0"}, write=True)

    writer = asyncio.create_task(write_after_the_first_page())
    try:
        with pytest.raises(GraphChanged, match=r"the graph changed while its pages were being made \((\d+) of 24"):
            await prerender(app, MODEL, concurrency=1)
        await writer
        assert len(cache.pages) < 24  # it stopped early
        again = await prerender(app, MODEL)  # nothing written since: all of them, under the new stamp
        assert again.rendered + again.kept == 24 and len(cache.pages) == 24
    finally:
        cache.pages.close()


async def test_the_background_renderer_waits_for_the_graph_to_be_quiet(store, settings, graph, caplog):
    """`serve --pages` beside a job that writes every so often (the demo's background N2G): the
    renderer stops at a write and starts again, without a restart, once the graph has been
    unchanged for quiet_s; then every page is kept under the last stamp."""
    import asyncio
    import logging

    from neurograph.api.pages import render_in_background

    app = create_app(settings, store, web_dir=None, check_every=0.0)  # the stamp read before each page
    cache = app.state.response_cache
    other = await open_store(settings)  # the background job: another process's connection
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="neurograph.api.pages")
    try:
        renderer = asyncio.create_task(render_in_background(app, stop, quiet_s=0.5))
        for i in range(20):  # a write every 0.1 s for 2 s: never quiet for 0.5 s
            await other.run("MATCH (n:Neuron {key: $k}) SET n.interest = $x", {"k": f"{MODEL}/1/1", "x": 2.0 + i},
                            write=True)
            await asyncio.sleep(0.1)
        written = await other.read_stamp()
        for _ in range(400):
            if renderer.done():
                break
            await asyncio.sleep(0.05)
        assert renderer.done() and renderer.exception() is None
        assert "pre-rendering neuron pages paused: the graph changed (" in caplog.text
        assert await cache.stamp(store) == written and len(cache.pages) == 24  # all, under the last stamp
        page = await post(app, neuron_page_variables(MODEL, 1, 1))
        assert cache.page_hits == 1 and json.loads(page.content)["data"]["neuron"]["interest"] == 21.0
    finally:
        stop.set()
        await other.close()
        cache.pages.close()
