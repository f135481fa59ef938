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


UNITS = "window.cy.nodes(\"[type != 'layer']\")"


async def _columns(page: Page) -> dict[int, list[float]]:
    """Each model layer's drawn units' x positions."""
    cols = await page.evaluate(UNITS + ".map(n => [n.data('layer'), n.position('x')])")
    out: dict[int, list[float]] = {}
    for layer, x in cols:
        out.setdefault(layer, []).append(x)
    return out


async def test_depth_2_neighbourhood_is_layered_and_folds_by_layer(dense: str, page: Page, store) -> None:
    key = f"{MODEL}/1/5"
    await page.goto(f"{dense}/#/neighborhood/{key}?depth=2")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy", timeout=60_000)
    async with __import__("httpx").AsyncClient() as c:
        api = (await c.post(f"{dense}/graphql", json={"query": "query($id: ID!) { neighborhood(id: $id, depth: 2, "
                                                      "perNode: 3) { nodes { key layer } edges { source } } }",
                                                      "variables": {"id": key}})).json()["data"]["neighborhood"]
    n_units = len(api["nodes"])
    assert n_units > 20 and await page.evaluate(UNITS + ".length") == n_units
    # Layered: one column per model layer, in the model's order left to right: every unit of a
    # layer lies left of every unit of the next, and a column is narrow beside the gap to the next
    # (its units differ in size: the centre, heads).
    await shot(page, "graph-02-layered")
    cols = await _columns(page)
    layers = sorted(cols)
    assert layers == sorted({n["layer"] for n in api["nodes"]}) and len(layers) >= 3
    gaps = [min(cols[b]) - max(cols[a]) for a, b in zip(layers, layers[1:])]
    assert min(gaps) > 40, gaps
    for layer in layers:
        assert max(cols[layer]) - min(cols[layer]) < min(gaps) / 4, (layer, cols[layer], gaps)
    before = await page.evaluate(UNITS + ".map(n => [n.id(), n.position('x'), n.position('y')])")

    # Fold the busiest layer with its axis button: its units become one node with their count.
    busiest = max(layers, key=lambda l: len(cols[l]))
    in_layer = [n["key"] for n in api["nodes"] if n["layer"] == busiest]
    label = page.locator(f".layer-label[data-layer='{busiest}']")
    await label.click()
    await expect(label).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate(UNITS + ".length") == n_units - len(in_layer)
    box = f"window.cy.getElementById('layer:{busiest}')"
    assert await page.evaluate(box + ".hasClass('cy-expand-collapse-collapsed-node')")
    assert await page.evaluate(box + ".data('folded')") == f"layer {busiest}\n{len(in_layer)} units"
    # Edges to the folded units now meet the summary node.
    assert await page.evaluate(box + ".connectedEdges().length") > 0
    assert await page.evaluate("ids => ids.every(id => window.cy.getElementById(id).empty())", in_layer)
    await shot(page, "graph-03-folded")
    # Fold a second layer by tapping its box, then unfold both: every unit back where it was.
    other = next(l for l in layers if l != busiest)
    await page.evaluate(f"window.cy.getElementById('layer:{other}').emit('tap')")
    await expect(page.locator(f".layer-label[data-layer='{other}']")).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate(UNITS + ".length") == n_units - len(in_layer) - len(cols[other])
    await label.click()
    await page.evaluate(f"window.cy.getElementById('layer:{other}').emit('tap')")
    await expect(label).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate(UNITS + ".length") == n_units
    assert await page.evaluate("window.cy.edges().length") == len(api["edges"])
    after = await page.evaluate(UNITS + ".map(n => [n.id(), n.position('x'), n.position('y')])")
    assert sorted(after) == sorted(before)
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


async def test_a_failing_layout_still_draws_the_units_in_layer_columns(dense: str, page: Page) -> None:
    """ELK that fails (its layout rejects: cytoscape-elk then never stops) must not leave the
    graph hidden: after the time limit the units are drawn in their layers' columns."""
    broken = "window.ELK = class { layout() { return Promise.reject(new Error('ELK broke')); } };"
    await page.route("**/vendor/elk.bundled.js",
                     lambda route: route.fulfill(status=200, content_type="text/javascript", body=broken))
    await page.goto(f"{dense}/#/neighborhood/{MODEL}/1/5?depth=2")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy", timeout=60_000)
    assert await page.evaluate(UNITS + ".length") > 20
    assert await page.evaluate("getComputedStyle(document.getElementById('neighborhood-graph')).visibility") \
        == "visible"
    cols = await _columns(page)
    layers = sorted(cols)
    assert len(layers) >= 3
    assert all(min(cols[b]) > max(cols[a]) for a, b in zip(layers, layers[1:]))  # the model's order
    await shot(page, "graph-04-layout-fallback")
