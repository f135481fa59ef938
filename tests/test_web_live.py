"""Browser tests of asking the model live: the Run-text page and the neuron page's text box and
steering panel, in Debian's chromium against a real server with a real model worker (the tiny
model) over a graph named for that model."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from loaders.model import tiny_model
from loaders.synthetic import write_synthetic_graph
from neurograph.api.app import create_app
from neurograph.worker import WorkerProcess
from test_web import browser, ready, shot  # noqa: F401 - browser: the same chromium fixture
from web_server import serve

pytestmark = pytest.mark.browser
TEXT = "In the beginning God created the heaven"


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


async def test_run_text_and_the_neuron_pages_live_panels(store, settings, tiny, browser):
    name = tiny.name
    await write_synthetic_graph(store, name, n_layers=tiny.info.n_layers, d_mlp=tiny.info.d_mlp, n_heads=0,
                                d_vocab=50, k=2, n_examples=1)
    worker = WorkerProcess(settings, "tiny", socket_path=settings.data_dir / f"w-{settings.graph}.sock")
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    async with serve(create_app(settings=settings, store=store, worker=worker)) as url:
        await worker_up(worker)
        await page.goto(f"{url}/#/run?model={name}&text={TEXT}")
        n_tokens = len(tiny.to_tokens(TEXT, prepend_bos=True))
        await expect(page.locator(".run-tokens .tok")).to_have_count(n_tokens, timeout=60_000)
        await page.locator(".run-tokens .tok").nth(2).click()
        await expect(page.locator(".run-detail table").first.locator("tbody tr")).to_have_count(10)
        await shot(page, "20-run-text")
        await page.locator(".run-detail a.run-neuron").first.click()
        await ready(page)
        assert re.search(rf"#/neuron/{re.escape(name)}/\d+/\d+$", page.url)

        # your text on this neuron: one coloured token per token of the text
        await page.fill(".live-text", TEXT)
        await page.click("button:text('Run')")
        await expect(page.locator(".live-out .tok")).to_have_count(n_tokens, timeout=60_000)
        # steering: both continuations shown
        await page.click("button:text('Generate')")
        await expect(page.locator(".steer-out")).to_have_count(1, timeout=60_000)
        assert (await page.locator(".steer-base").inner_text()).strip()
        await shot(page, "21-neuron-live")

        # the attribution graph of a prompt: tokens along the bottom, the logit on top; a
        # neuron opens its page
        await page.goto(f"{url}/#/attribution?model={name}&prompt={TEXT}")
        await page.wait_for_function("window.cyAttribution && window.cyAttribution.nodes().length > 0",
                                     timeout=60_000)
        kinds = await page.evaluate("window.cyAttribution.nodes().map((n) => n.data('type'))")
        assert kinds.count("token") == n_tokens and kinds.count("logit") == 1 and "neuron" in kinds
        ys = await page.evaluate("""(() => { const cy = window.cyAttribution;
          const y = (t) => cy.nodes(`[type = '${t}']`).map((n) => n.position('y'));
          return {token: Math.min(...y('token')), logit: Math.max(...y('logit'))}; })()""")
        assert ys["logit"] < ys["token"]  # screen y grows downwards: the logit is drawn above the tokens
        await shot(page, "22-attribution")
        await page.evaluate("window.cyAttribution.nodes(\"[type = 'neuron']\")[0].emit('tap')")
        await ready(page)
        assert re.search(rf"#/neuron/{re.escape(name)}/\d+/\d+$", page.url)
    await ctx.close()
    assert not errors, errors


async def worker_up(worker, timeout: float = 120.0) -> None:
    import asyncio
    import time

    t0 = time.monotonic()
    while worker.state != "up":
        assert time.monotonic() - t0 < timeout, "the model worker did not start"
        await asyncio.sleep(0.2)
