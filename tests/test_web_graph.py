"""Browser tests of the UI's larger lists and graphs, in Debian's chromium against a real server
over a synthetic graph with many edges per neuron: the neuron page's connectivity lists page
past 20 with "More"; depth-2 neighbourhoods draw layered and fold into summary nodes."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from loaders.synthetic import write_synthetic_graph
from neurograph.api.app import create_app
from test_web import browser, page, ready, shot  # noqa: F401 - the same chromium fixtures
from web_server import serve

pytestmark = pytest.mark.browser
MODEL = "synth"


@pytest.fixture
async def dense(store, settings):
    """Base URL of a live server over a graph with 24 edges of each kind per neuron."""
    await write_synthetic_graph(store, MODEL, n_layers=3, d_mlp=32, n_heads=2, d_vocab=60, k=24, seed=2)
    async with serve(create_app(settings=settings, store=store)) as url:
        yield url


async def _most(store, pattern: str) -> tuple[str, int]:
    rows = await store.run(f"MATCH (n:Neuron {{model: $m}}) {pattern} WITH n, count(e) AS c "
                           "RETURN n.key AS key, c ORDER BY c DESC, key LIMIT 1", {"m": MODEL})
    return rows[0]["key"], rows[0]["c"]


async def test_connectivity_lists_page_past_20_with_more(dense: str, page: Page, store) -> None:
    key, n_out = await _most(store, "MATCH (n)-[e:COMPOSES]->()")
    assert n_out > 40  # three pages: 20, 20 and the rest
    _, layer, index = key.split("/")
    await page.goto(f"{dense}/#/neuron/{MODEL}/{layer}/{index}")
    await ready(page)
    tab = page.locator(".tabs button[data-tab=outputs]")
    await tab.click()
    items = page.locator(".conn-pane[data-tab=outputs] li")
    await expect(items).to_have_count(20)
    await expect(tab).to_have_text(f"Outputs (20 of {n_out})")
    more = page.locator(".conn-pane[data-tab=outputs] button.conn-more")
    await expect(more).to_have_text(f"More (20 of {n_out} shown)")
    await more.click()
    await expect(items).to_have_count(40)
    await expect(tab).to_have_text(f"Outputs (40 of {n_out})")
    await more.click()
    await expect(items).to_have_count(n_out)
    await expect(more).to_have_count(0)  # nothing left to load
    await expect(tab).to_have_text(f"Outputs ({n_out})")
    # Every stored edge out of the neuron, each once.
    stored = await store.run("MATCH (:Neuron {key: $k})-[e:COMPOSES]->(m) RETURN m.key AS key, e.kind AS kind",
                             {"k": key})
    shown = await items.evaluate_all(
        "ls => ls.map(l => [l.querySelector('a').getAttribute('href').split('/').slice(-3).join('/'), "
        "l.closest('.kind-group').dataset.kind])")
    assert sorted(tuple(s) for s in shown) == sorted((r["key"], r["kind"]) for r in stored)
    await shot(page, "graph-01-connectivity-more")

    # Correlations page the same way (another list, its own cursor).
    await page.locator(".tabs button[data-tab=correlated]").click()
    n_corr = (await store.run("MATCH (:Neuron {key: $k})-[e:CORRELATES]-(m) RETURN count(DISTINCT m) AS n",
                              {"k": key}))[0]["n"]
    corr = page.locator(".conn-pane[data-tab=correlated] li")
    await expect(corr).to_have_count(min(20, n_corr))
    if n_corr > 20:
        await page.locator(".conn-pane[data-tab=correlated] button.conn-more").click()
        await expect(corr).to_have_count(min(40, n_corr))
    # Switching back keeps what was loaded.
    await page.locator(".tabs button[data-tab=outputs]").click()
    await expect(items).to_have_count(n_out)
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]
