"""Browser tests of the UI's larger lists and graphs, in Debian's chromium against a real server
over a synthetic graph with many edges per neuron: the neuron page's connectivity lists page
past 20 with "More"; depth-2 neighbourhoods draw layered and fold into summary nodes, a folded
layer's edges to one node merge by kind and direction, and a unit folds the units reached only
through it."""

from __future__ import annotations

import math
from collections import defaultdict
from urllib.parse import urlparse

import httpx
import networkx as nx
import pytest
from playwright.async_api import Browser, Page, Route, expect

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


async def _offline(page: Page) -> list[str]:
    """Abort every request that is not to the loopback server; returns what was blocked."""
    blocked: list[str] = []

    async def only_loopback(route: Route) -> None:
        if (urlparse(route.request.url).hostname or "") in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_loopback)
    return blocked


async def _drawn(url: str, page: Page, key: str, layout: str = "layers") -> dict:
    """Open a depth-2 neighbourhood; returns the API's answer for the same walk (as the page maps it)."""
    await page.goto(f"{url}/#/neighborhood/{key}?depth=2&layout={layout}")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy", timeout=60_000)
    async with httpx.AsyncClient() as c:
        api = (await c.post(f"{url}/graphql", json={
            "query": "query($id: ID!) { neighborhood(id: $id, depth: 2, perNode: 3) { nodes { key layer title } "
                     "edges { source target type kind weight } } }", "variables": {"id": key}})).json()
    g = api["data"]["neighborhood"]
    for e in g["edges"]:  # the page's kind and direction (queries.js)
        e["kind"] = "attribution" if e["type"] == "ATTRIBUTES_TO" else e["kind"] or e["type"]
        e["undirected"] = e["type"] in ("CORRELATES", "SIMILAR")
    return g


# The units drawn. style() before visible(): visible() reads a cache that a class change made
# just before (a fold) leaves stale until cytoscape's next frame.
DRAWN = "(x => x.style('display') !== 'none' && x.visible())"
SHOWN = f"window.cy.nodes(\"[type != 'layer']\").filter({DRAWN}).map(n => n.id())"


async def test_a_folded_layer_merges_its_edges_to_one_node_by_kind_and_direction(dense: str, page: Page) -> None:
    blocked = await _offline(page)
    g = await _drawn(dense, page, f"{MODEL}/1/5")
    layer_of = {n["key"]: n["layer"] for n in g["nodes"]}
    # Expected merges, per folded layer: its units' edges to one outside node, by kind and
    # direction (an undirected kind's two ways are one).
    groups: dict[int, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for e in g["edges"]:
        for end, other in (("source", "target"), ("target", "source")):
            layer = layer_of[e[end]]
            if layer_of[e[other]] != layer:
                way = "both" if e["undirected"] else end
                groups[layer][(e[other], e["kind"], way)].append(e)
    layer, (other, kind, way), members = max(
        ((lay, k, v) for lay, gs in groups.items() for k, v in gs.items()), key=lambda t: len(t[2]))
    assert len(members) >= 3, members  # the graph has a real merge to show
    before = await page.evaluate("window.cy.edges().map(e => [e.id(), e.source().id(), e.target().id()])")
    colour = await page.evaluate(f"window.cy.edges().filter(e => e.data('kind') === '{kind}')[0].style('line-color')")
    label = page.locator(f".layer-label[data-layer='{layer}']")
    await label.click()
    await expect(label).to_have_attribute("aria-pressed", "true")

    merged = await page.evaluate(
        f"window.cy.getElementById('layer:{layer}').edgesWith(window.cy.getElementById('{other}'))"
        f".filter(e => e.data('kind') === '{kind}').map(e => ({{ ...e.data(), collapsedEdges: undefined, "
        f"ids: e.data('collapsedEdges') ? e.data('collapsedEdges').map(x => x.id()) : [e.id()], "
        f"merged: e.hasClass('cy-expand-collapse-collapsed-edge'), color: e.style('line-color') }}))")
    if way != "both":  # one direction: the other direction (if any) is its own edge
        merged = [m for m in merged if (m["source"] == other) == (way == "target")]
    assert len(merged) == 1, merged
    m = merged[0]
    weights = [e["weight"] for e in members]
    assert m["merged"] and m["count"] == len(members) and m["label"] == f"×{len(members)}"
    assert math.isclose(m["weight"], sum(weights), rel_tol=1e-9, abs_tol=1e-12)
    assert m["strongest"] == max(weights, key=abs)
    assert m["color"] == colour  # its kind's colour
    # Every merge the folded layer calls for, and nothing else: the drawn edges, each merged one
    # counted by what it holds, are all edges except those inside the folded layer.
    n_merged = sum(1 for v in groups[layer].values() if len(v) >= 2)
    assert await page.evaluate("window.cy.edges('.cy-expand-collapse-collapsed-edge').length") == n_merged
    held = await page.evaluate("window.cy.edges().map(e => e.data('collapsedEdges') ? e.data('collapsedEdges').length : 1)")
    inside = sum(1 for e in g["edges"] if layer_of[e["source"]] == layer_of[e["target"]] == layer)
    assert sum(held) == len(g["edges"]) - inside
    # Its hover line says what it merges.
    eid = await page.evaluate(
        f"window.cy.edges('.cy-expand-collapse-collapsed-edge').filter(e => e.data('count') === {len(members)}"
        f" && e.data('kind') === '{kind}' && e.connectedNodes().some(n => n.id() === '{other}'))[0].id()")
    await page.evaluate(f"window.cy.getElementById('{eid}').emit('mouseover')")
    await expect(page.locator(".selected")).to_contain_text(f"{len(members)} {kind} edges, summed weight")
    await shot(page, "graph-05-layer-edges-merged")

    # Unfolded: the drawn edges back, each between its own units.
    await label.click()
    await expect(label).to_have_attribute("aria-pressed", "false")
    after = await page.evaluate("window.cy.edges().map(e => [e.id(), e.source().id(), e.target().id()])")
    assert sorted(after) == sorted(before)
    assert await page.evaluate("window.cy.edges('.cy-expand-collapse-collapsed-edge').length") == 0
    assert not blocked and not page.js_errors, (blocked, page.js_errors)  # type: ignore[attr-defined]


def _behind(g: dict, centre: str) -> dict[str, set[str]]:
    """Each unit's exclusive descendants: reached from the centre only through it."""
    graph = nx.Graph()
    graph.add_nodes_from(n["key"] for n in g["nodes"])
    graph.add_edges_from((e["source"], e["target"]) for e in g["edges"])
    reach = nx.node_connected_component(graph, centre)
    out = {}
    for u in graph:
        if u == centre:
            continue
        rest = graph.copy()
        rest.remove_node(u)
        behind = reach - nx.node_connected_component(rest, centre) - {u}
        if behind:
            out[u] = behind
    return out


async def _unit_at(page: Page, unit: str) -> tuple[float, float]:
    """Where the unit is drawn on the page (scrolled into view)."""
    await page.locator("#neighborhood-graph").scroll_into_view_if_needed()
    # two frames: the scroll event tells cytoscape its container moved
    await page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return tuple(await page.evaluate(
        "id => { const p = window.cy.getElementById(id).renderedPosition(), "
        "r = window.cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }", unit))


async def _hover(page: Page, unit: str) -> None:
    """Point at a unit: its quiet fold button shows."""
    await page.mouse.move(*await _unit_at(page, unit))
    await expect(page.locator(f".subtree-fold[data-node='{unit}']")).not_to_have_class("subtree-fold quiet")


async def _hold(page: Page, unit: str) -> None:
    """Press and hold a unit with a finger (a phone has no hover): selects it, opens nothing."""
    x, y = await _unit_at(page, unit)
    before = page.url
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    # cytoscape's taphold fires after 500 ms: lift the finger only once it has (a busy machine)
    await page.wait_for_function(f"window.cy.getElementById('{unit}').selected()")
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await expect(page.locator(f".subtree-fold[data-node='{unit}']")).not_to_have_class("subtree-fold quiet")
    assert page.url == before
    assert await page.evaluate(f"window.cy.getElementById('{unit}').selected()")


async def _phone(browser: Browser) -> tuple:
    """A phone-sized touch page, offline: (its context, the page, its page errors, blocked requests)."""
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = await ctx.new_page()
    errors: list[str] = []
    phone.on("pageerror", lambda e: errors.append(str(e)))
    return ctx, phone, errors, await _offline(phone)


async def _fold_subtree_and_back(page: Page, behind: dict[str, set[str]], centre: str, all_units: set[str]) -> str:
    """Fold the unit with most units behind it (then unfold it from the keyboard); returns it."""
    drawn = await page.locator(".subtree-fold").evaluate_all("bs => bs.map(b => b.dataset.node)")
    assert sorted(drawn) == sorted(behind)  # a button on exactly the units that have any
    unit = max(sorted(behind), key=lambda u: len(behind[u]))
    n = len(behind[unit])
    button = page.locator(f".subtree-fold[data-node='{unit}']")
    await _hover(page, unit)
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")
    await expect(button).to_have_text(f"+{n}")
    await page.mouse.move(0, 0)
    await expect(button).not_to_have_class("subtree-fold quiet")  # a "+N" always shows
    assert set(await page.evaluate(SHOWN)) == all_units - behind[unit]  # the centre and shared units stay
    assert (await page.evaluate(f"window.cy.getElementById('{unit}').style('label')")).endswith(f"(+{n})")
    hidden_edges = await page.evaluate(f"window.cy.edges().filter(e => !{DRAWN}(e)).map(e => [e.source().id(), e.target().id()])")
    assert hidden_edges and all(a in behind[unit] or b in behind[unit] for a, b in hidden_edges)
    # The buttons of units now hidden are gone with them.
    for u in behind[unit] & set(behind):
        assert await page.locator(f".subtree-fold[data-node='{u}']").is_hidden()
    return unit


async def test_a_unit_folds_the_units_reached_only_through_it(dense: str, page: Page, browser: Browser) -> None:
    blocked = await _offline(page)
    centre = f"{MODEL}/1/5"
    g = await _drawn(dense, page, centre)
    behind = _behind(g, centre)
    assert behind and max(len(b) for b in behind.values()) >= 2
    all_units = {n["key"] for n in g["nodes"]}
    n_edges = len(g["edges"])
    unit = await _fold_subtree_and_back(page, behind, centre, all_units)
    # With the layer folded that holds most of the hidden units: the folded layer takes them
    # (still hidden, their edges merged with no other), then everything comes back.
    layer_of = {n["key"]: n["layer"] for n in g["nodes"]}
    busiest = max(set(layer_of.values()) - {layer_of[unit]}, key=lambda l: sum(layer_of[u] == l for u in behind[unit]))
    assert any(layer_of[u] == busiest for u in behind[unit])
    await page.locator(f".layer-label[data-layer='{busiest}']").click()
    assert set(await page.evaluate(SHOWN)) == {u for u in all_units - behind[unit] if layer_of[u] != busiest}
    merged = await page.evaluate("window.cy.edges('.cy-expand-collapse-collapsed-edge')"
                                 ".map(e => e.data('collapsedEdges').map(x => x.hasClass('fold-hidden')))")
    assert merged and not any(any(m) for m in merged)
    await shot(page, "graph-06-subtree-and-layer-folded")
    # Unfold the unit from the keyboard while its layer neighbour stays folded, then the layer.
    button = page.locator(f".subtree-fold[data-node='{unit}']")
    await button.focus()
    await page.keyboard.press("Enter")
    await expect(button).to_have_attribute("aria-pressed", "false")
    await expect(button).to_have_text("−")
    await page.locator(f".layer-label[data-layer='{busiest}']").focus()
    await page.keyboard.press("Space")
    assert set(await page.evaluate(SHOWN)) == all_units
    assert await page.evaluate(f"window.cy.edges().filter({DRAWN}).length") == n_edges

    # The force layout has the same folds.
    g = await _drawn(dense, page, centre, layout="force")
    assert _behind(g, centre) == behind
    unit = await _fold_subtree_and_back(page, behind, centre, all_units)
    button = page.locator(f".subtree-fold[data-node='{unit}']")
    await button.press("Enter")
    await expect(button).to_have_attribute("aria-pressed", "false")
    hidden = await page.evaluate(f"window.cy.nodes(\"[type != 'layer']\").filter(n => !{DRAWN}(n))"
                                 ".map(n => [n.id(), n.classes().join(' '), n.style('display'), n.style('visibility')])")
    assert set(await page.evaluate(SHOWN)) == all_units, (unit, hidden)
    assert not blocked and not page.js_errors, (blocked, page.js_errors)  # type: ignore[attr-defined]

    # At a phone's width the buttons take taps too.
    ctx, phone, errors, blocked = await _phone(browser)
    await _drawn(dense, phone, centre)
    button = phone.locator(f".subtree-fold[data-node='{unit}']")
    await _hold(phone, unit)
    await button.tap()
    await expect(button).to_have_attribute("aria-pressed", "true")
    assert set(await phone.evaluate(SHOWN)) == all_units - behind[unit]
    label = phone.locator(".layer-label:not([hidden])").first
    await label.tap()
    await expect(label).to_have_attribute("aria-pressed", "true")
    await shot(phone, "graph-07-phone-folds")
    await ctx.close()
    assert not blocked and not errors, (blocked, errors)


@pytest.fixture
async def wide(store, settings):
    """Base URL of a live server over a graph of many layers: a depth-2 walk spans most of them."""
    await write_synthetic_graph(store, "wide", n_layers=24, d_mlp=16, n_heads=2, d_vocab=60, k=4, seed=5)
    async with serve(create_app(settings=settings, store=store)) as url:
        yield url


# Every drawn unit's box on the page, and every fold button and layer heading that shows.
BOXES = """() => {
  const cy = window.cy, r = cy.container().getBoundingClientRect();
  const units = cy.nodes("[type != 'layer']").filter(n => n.style("display") !== "none" && n.visible()).map(n => {
    const p = n.renderedPosition(), w = n.renderedWidth() / 2, h = n.renderedHeight() / 2;
    return {id: n.id(), left: r.left + p.x - w, right: r.left + p.x + w, top: r.top + p.y - h, bottom: r.top + p.y + h};
  });
  const shows = (b) => !b.hidden && getComputedStyle(b).opacity !== '0' && getComputedStyle(b).display !== 'none';
  const rect = (b) => { const q = b.getBoundingClientRect(); return {left: q.left, right: q.right, top: q.top, bottom: q.bottom}; };
  return {
    units,
    buttons: [...document.querySelectorAll('.subtree-fold')].filter(shows).map(b => ({node: b.dataset.node, ...rect(b)})),
    labels: [...document.querySelectorAll('.layer-label')].filter(shows).map(b => ({layer: b.dataset.layer, text: b.textContent, name: b.getAttribute('aria-label'), ...rect(b)})),
    inside: units.every(u => u.left >= r.left && u.right <= r.right && u.top >= r.top && u.bottom <= r.bottom),
  };
}"""


def _overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def _readable(drawn: dict, n_layers: int) -> None:
    """Units at least 8 px; headings that show do not overlap, name their layer; a fold button
    that shows covers no unit but its own."""
    assert min(min(u["right"] - u["left"], u["bottom"] - u["top"]) for u in drawn["units"]) >= 8
    labels = sorted(drawn["labels"], key=lambda lab: lab["left"])
    assert labels and all(a["right"] <= b["left"] for a, b in zip(labels, labels[1:])), labels
    for lab in labels:
        assert lab["text"] in (f"L{lab['layer']}", f"layer {lab['layer']}") and lab["name"].startswith(f"layer {lab['layer']}:")
    assert len({lab["layer"] for lab in labels}) <= n_layers
    for b in drawn["buttons"]:
        covered = [u["id"] for u in drawn["units"] if u["id"] != b["node"] and _overlap(b, u)]
        assert not covered, (b, covered)


async def test_a_wide_layered_neighbourhood_is_readable(wide: str, page: Page, browser: Browser) -> None:
    """Many layers, ~150 units: fitted at 1400 px the units are drawn ≥ 8 px, the layer headings
    do not overlap, and the fold buttons stay quiet until a unit is pointed at, held or its
    button focused; folding still works from the keyboard and with a finger."""
    blocked = await _offline(page)
    await page.set_viewport_size({"width": 1400, "height": 900})
    centre = "wide/12/3"
    g = await _drawn(wide, page, centre)
    layers = {n["layer"] for n in g["nodes"]}
    behind = _behind(g, centre)
    assert len(g["nodes"]) >= 100 and len(layers) >= 20 and len(behind) >= 5
    drawn = await page.evaluate(BOXES)
    assert drawn["inside"] and len(drawn["units"]) == len(g["nodes"])  # the whole drawing fitted
    _readable(drawn, len(layers))
    assert len(drawn["labels"]) == len(layers)  # at 1400 px every column has its heading
    assert drawn["buttons"] == []  # every "−" quiet, …
    assert await page.locator(".subtree-fold:not([hidden])").count() == len(behind)  # … but there
    await shot(page, "graph-08-wide-layered")

    # Pointing at a unit shows its button; folding from the keyboard: Tab reaches a quiet button,
    # which shows while focused.
    unit = max(sorted(behind), key=lambda u: len(behind[u]))
    await _hover(page, unit)
    _readable(await page.evaluate(BOXES), len(layers))
    await page.mouse.move(0, 0)
    button = page.locator(f".subtree-fold[data-node='{unit}']")
    await expect(button).to_have_class("subtree-fold quiet")
    await button.focus()
    assert await button.evaluate("b => getComputedStyle(b).opacity") == "1"
    await page.keyboard.press("Enter")
    await expect(button).to_have_text(f"+{len(behind[unit])}")
    await page.locator("h1").click()  # focus elsewhere: a "+N" still shows
    drawn = await page.evaluate(BOXES)
    assert [b["node"] for b in drawn["buttons"]] == [unit]
    _readable(drawn, len(layers))
    assert {u["id"] for u in drawn["units"]} == {n["key"] for n in g["nodes"]} - behind[unit]
    await button.focus()
    await page.keyboard.press("Enter")
    await expect(button).to_have_text("−")
    assert not blocked and not page.js_errors, (blocked, page.js_errors)  # type: ignore[attr-defined]

    # A phone: units still ≥ 8 px (opened on the centre, not the whole width), headings shortened
    # or left out rather than overlapping; a held unit shows its button, a tap on it folds.
    ctx, phone, errors, blocked = await _phone(browser)
    await _drawn(wide, phone, centre)
    await phone.locator("#neighborhood-graph").scroll_into_view_if_needed()
    drawn = await phone.evaluate(BOXES)
    _readable(drawn, len(layers))
    assert drawn["buttons"] == []
    near = [b for b in await phone.locator(".subtree-fold:not([hidden])").evaluate_all("bs => bs.map(b => b.dataset.node)")]
    assert near  # some unit with a subtree is in view
    await _hold(phone, near[0])
    _readable(await phone.evaluate(BOXES), len(layers))
    button = phone.locator(f".subtree-fold[data-node='{near[0]}']")
    await button.tap()
    await expect(button).to_have_attribute("aria-pressed", "true")
    assert set(await phone.evaluate(SHOWN)) == {n["key"] for n in g["nodes"]} - behind[near[0]]
    label = phone.locator(".layer-label:not([hidden])").first
    await label.tap()
    await expect(label).to_have_attribute("aria-pressed", "true")
    await shot(phone, "graph-09-wide-phone")
    await ctx.close()
    assert not blocked and not errors, (blocked, errors)
