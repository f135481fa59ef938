"""Browser tests of the web UI: Debian's chromium driven by Playwright against a real server
(uvicorn + the GraphQL app + a synthetic graph in the session's FalkorDB).

They click through model -> neuron -> neighbour -> search -> compare, assert on what is shown
against what the store holds, and leave a screenshot of every page in artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from loaders.synthetic import write_synthetic_graph
from neurograph.api.app import create_app
from web_server import serve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
MODEL = "synth"
N_LAYERS, D_MLP = 4, 16
CTX = 80  # tokens per context: longer than the truncated view (50 before + pivot + 10 after)
GRAPH = dict(n_layers=N_LAYERS, d_mlp=D_MLP, n_heads=2, d_vocab=60, k=4, ctx_len=CTX)
UNITS = "window.cy.nodes(\"[type != 'layer']\")"  # the drawn units, not the layered drawing's layer boxes


@pytest.fixture(scope="module")
async def browser() -> Browser:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


@pytest.fixture
async def site(store, settings):
    """Base URL of a live server over a freshly written synthetic graph."""
    await write_synthetic_graph(store, MODEL, **GRAPH)
    async with serve(create_app(settings=settings, store=store)) as url:
        yield url


@pytest.fixture
async def page(browser: Browser):
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    p = await ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.js_errors = errors  # type: ignore[attr-defined]
    yield p
    await ctx.close()


async def ready(page: Page) -> None:
    """Wait until the routed page has finished loading its data."""
    await page.wait_for_function(
        "document.body.dataset.ready === '1' && document.body.dataset.hash === location.hash")


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def gql(url: str, query: str, **variables) -> dict:
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/graphql", json={"query": query, "variables": variables})
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]


async def test_click_through_model_neuron_neighbour_search(site: str, page: Page, store) -> None:
    # Models index: one row per model in the graph.
    await page.goto(f"{site}/")
    await ready(page)
    await expect(page.locator("table.models tbody tr")).to_have_count(1)
    await expect(page.locator("table.models")).to_contain_text(MODEL)
    await shot(page, "01-models")

    # Model page: its layers as stored, and a ranked table of neurons.
    await page.click(f"table.models a:text('{MODEL}')")
    await ready(page)
    assert re.search(rf"#/model/{MODEL}$", page.url)
    layers = await store.run("MATCH (:Model {key: $m})-[:HAS_LAYER]->(l:Layer) RETURN count(l) AS n", {"m": MODEL})
    await expect(page.locator(".layers a[data-layer]")).to_have_count(layers[0]["n"])
    await expect(page.locator("table.layers-table tbody tr")).to_have_count(layers[0]["n"])
    await expect(page.locator("table.layers-table tbody tr").first.locator(".top3 a")).to_have_count(3)
    # N2G coverage, and the blocks of a sweep under way (loaders.n2g.storage keeps them on the model).
    await expect(page.locator(".sub").first).to_contain_text("N2G: ")
    now = int(time.time())
    await store.query("set_model_props", key=MODEL, props={"n2g_sweep_test": [3, 8, now],
                                                            "n2g_sweep_gone": [1, 8, now - 7200]})  # not heard of
    await page.reload()
    await ready(page)
    await expect(page.locator(".sub").first).to_contain_text("(sweep: 3 / 8 blocks)")
    await store.query("set_model_props", key=MODEL, props={"n2g_sweep_test": [8, 8, now]})  # done: not shown
    # Random neuron: lands on some neuron page of this model.
    await page.click("button:text('Random neuron')")
    await ready(page)
    assert re.search(rf"#/neuron/{MODEL}/\d+/\d+$", page.url)
    await expect(page.locator(".stats")).to_be_visible()
    await page.go_back()
    await ready(page)
    rows = page.locator("table.neurons tbody tr")
    await expect(rows.first).to_be_visible()
    assert await rows.count() == min(50, N_LAYERS * D_MLP)
    # The default ranking is by interest, highest first, as the store has it.
    top = await store.run("MATCH (n:Neuron {model: $m}) RETURN n.key AS key ORDER BY n.interest DESC LIMIT 1",
                          {"m": MODEL})
    assert await rows.first.get_attribute("data-key") == top[0]["key"]
    await shot(page, "02-model")

    # Sort by kurtosis, ascending after a second click.
    await page.click("th[data-stat=kurt]")
    await ready(page)
    await expect(page.locator("th.sorted")).to_have_attribute("data-stat", "kurt")
    await page.click("th[data-stat=kurt]")
    await ready(page)
    low = await store.run("MATCH (n:Neuron {model: $m}) RETURN n.key AS key ORDER BY n.kurt ASC LIMIT 1", {"m": MODEL})
    assert await page.locator("table.neurons tbody tr").first.get_attribute("data-key") == low[0]["key"]

    # A layer's neurons only.
    await page.click(".layers a[data-layer='2']")
    await ready(page)
    keys = await page.locator("table.neurons tbody tr").evaluate_all("rs => rs.map(r => r.dataset.key)")
    assert keys and all(k.split("/")[1] == "2" for k in keys)

    # Neuron page: click through to a neuron with an N2G pattern (even indices have one).
    key = f"{MODEL}/1/4"
    await page.click(".layers a[data-layer='1']")
    await ready(page)
    await page.click(f"table.neurons tr[data-key='{key}'] a")
    await ready(page)
    assert page.url.endswith(f"#/neuron/{MODEL}/1/4")
    await expect(page.locator("h1")).to_contain_text("L1 · N4")
    props = (await store.run("MATCH (n:Neuron {key: $k}) RETURN n", {"k": key}))[0]["n"]
    shown = float(await page.locator(".stats [data-stat=kurt] dd").inner_text())
    assert shown == pytest.approx(props["kurt"], rel=1e-3)
    # Histogram: one bar per non-empty bin.
    bars = await page.locator("svg.histogram rect.bar").count()
    assert bars == sum(1 for c in props["hist_counts"] if c)
    # Examples: as many as stored, tokens coloured, the pivot marked.
    n_max = (await store.run("MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max'}]->() RETURN count(a) AS n",
                             {"k": key}))[0]["n"]
    await expect(page.locator(".examples[data-kind=max] .example")).to_have_count(n_max)
    n_random = (await store.run("MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'random'}]->() RETURN count(a) AS n",
                                {"k": key}))[0]["n"]
    await expect(page.locator(".examples[data-kind=random] .example")).to_have_count(n_random)
    first_ex = page.locator(".examples[data-kind=max] .example").first
    pivot = first_ex.locator(".ctx.short .tok.pivot")
    await expect(pivot).to_have_count(1)
    bg = await pivot.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg.startswith("rgba(220, 38, 38") or bg == "rgb(220, 38, 38)", bg  # the max token is red
    await pivot.hover()
    await expect(page.locator(".tooltip")).to_be_visible()
    await expect(page.locator(".tooltip")).to_contain_text(await pivot.inner_text())
    # Explanations with their scores, top tokens, the pattern graph drawn.
    expl = await store.run("MATCH (:Neuron {key: $k})-[:EXPLAINED_BY]->(x) RETURN x.text AS t", {"k": key})
    await expect(page.locator(".explanations")).to_contain_text(expl[0]["t"])
    # Output tokens from both ends: those it raises (weight > 0) and those it lowers (< 0).
    outs = await store.run("MATCH (:Neuron {key: $k})-[e:TOKEN_EFFECT {kind: 'output'}]->() RETURN e.weight AS w",
                           {"k": key})
    await expect(page.locator(".tok-group[data-kind=output] .tok-chip")).to_have_count(sum(r["w"] > 0 for r in outs))
    await expect(page.locator(".tok-group[data-kind=outputBottom] .tok-chip")).to_have_count(
        sum(r["w"] < 0 for r in outs))
    n_pattern = (await store.run("MATCH (:Neuron {key: $k})-[:HAS_PATTERN]->(p) RETURN count(p) AS n",
                                 {"k": key}))[0]["n"]
    await page.wait_for_function("window.cyPattern && window.cyPattern.nodes().length > 0")
    assert await page.evaluate("window.cyPattern.nodes().length") == n_pattern
    # Connectivity: the outputs tab lists the COMPOSES edges out of this neuron, grouped by kind.
    n_out = (await store.run("MATCH (:Neuron {key: $k})-[e:COMPOSES]->() RETURN count(e) AS n", {"k": key}))[0]["n"]
    await page.click(".tabs button[data-tab=outputs]")
    await expect(page.locator(".conn-pane[data-tab=outputs] li")).to_have_count(n_out)
    await expect(page.locator(".conn-pane .kind-group[data-kind=virtual]")).to_be_visible()
    await page.click(".tabs button[data-tab=heads]")
    await expect(page.locator(".conn-pane[data-tab=heads] li").first).to_contain_text("head")
    await shot(page, "03-neuron")

    # Truncated views: at most 50 tokens before the pivot and 10 after; expand to the full context.
    stored = await store.run(
        "MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max'}]->(x) RETURN a.rank AS rank, a.pivot AS pivot "
        "ORDER BY a.rank", {"k": key})
    for ex, row in zip(await page.locator(".examples[data-kind=max] .example").all(), stored):
        short = await ex.locator(".ctx.short .tok").evaluate_all("ts => ts.map(t => +t.dataset.pos)")
        p = row["pivot"]
        assert short == list(range(max(0, p - 50), min(CTX, p + 11))), (p, short[:3], short[-3:])
        assert await ex.locator(".ctx.short .tok.pivot").get_attribute("data-pos") == str(p)
    toggle = page.locator(".examples[data-kind=max] .example button").first
    example = page.locator(".examples[data-kind=max] .example").filter(has=page.locator("button")).first
    await toggle.click()
    await expect(example.locator(".ctx.full")).to_be_visible()
    await expect(example.locator(".ctx.full .tok")).to_have_count(CTX)
    await expect(example.locator(".ctx.short")).to_be_hidden()
    await toggle.click()
    await expect(example.locator(".ctx.full")).to_be_hidden()

    # Pages of examples: two per page, then "Load more" fetches the rest.
    await page.goto(f"{site}/#/neuron/{MODEL}/1/4?examples=2")
    await ready(page)
    card = page.locator(".card", has=page.locator(".examples[data-kind=max]"))
    await expect(card.locator(".example")).to_have_count(2)
    await expect(card.locator("h2")).to_contain_text(f"2 of {n_max}")
    await card.locator("button.more").click()
    await expect(card.locator(".example")).to_have_count(n_max)
    await expect(card.locator("button.more")).to_have_count(0)
    ranks = await card.locator(".ex-title").all_inner_texts()
    assert ranks == [f"#{i + 1}" for i in range(n_max)]

    # Neighbourhood: drawn with cytoscape, the same nodes the API returns.
    await page.click("a:text('Neighbourhood graph')")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.nodes().length > 1")
    api = await gql(site, "query($id: ID!) { neighborhood(id: $id, depth: 1, perNode: 3) { nodes { key } edges { kind } } }",
                    id=key)
    assert await page.evaluate(UNITS + ".length") == len(api["neighborhood"]["nodes"])
    assert await page.evaluate("window.cy.edges().length") == len(api["neighborhood"]["edges"])
    assert await page.evaluate(f"window.cy.getElementById('{key}').data('center')") is True
    # Edge colours by kind: every kind in the legend.
    for kind in {e["kind"] for e in api["neighborhood"]["edges"]}:
        await expect(page.locator(f".legend [data-kind='{kind}']")).to_have_count(1)
    await shot(page, "04-neighborhood")

    # Depth 2 and a minimum weight: more nodes, then only strong edges.
    await page.select_option("select[name=depth]", "2")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.nodes().length > 1")
    api2 = await gql(site, "query($id: ID!) { neighborhood(id: $id, depth: 2, perNode: 3) { nodes { key } } }", id=key)
    assert await page.evaluate(UNITS + ".length") == len(api2["neighborhood"]["nodes"])
    await page.fill("input[name=min]", "0.5")
    await page.dispatch_event("input[name=min]", "change")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy")
    weights = await page.evaluate("window.cy.edges().map(e => Math.abs(e.data('weight')))")
    assert weights and min(weights) >= 0.5
    assert "min=0.5" in page.url and "depth=2" in page.url

    # Click a head: its page opens; with "re-centres", the graph centres on it instead.
    head = await page.evaluate("window.cy.nodes().filter(n => n.data('type') === 'head').map(n => n.id())")
    assert head, "the synthetic graph links every neuron to heads"
    hm, hl, hh = re.match(r"(.+)/L(\d+)H(\d+)$", head[0]).groups()
    await page.evaluate("id => { window.cy.getElementById(id).emit('tap'); }", head[0])
    await ready(page)
    assert page.url.endswith(f"#/head/{hm}/{hl}/{hh}")
    await expect(page.locator("h1")).to_contain_text(f"L{hl} · H{hh}")
    await page.go_back()
    await ready(page)
    await _choose_click(page, "recentre")
    await page.evaluate("id => { window.cy.getElementById(id).emit('tap'); }", head[0])
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy")
    assert await page.evaluate(f"window.cy.getElementById('{head[0]}').data('center')") is True
    assert f"#/neighborhood/{hm}/head/{hl}/{hh}?" in page.url
    await expect(page.locator("h1")).to_contain_text(f"L{hl} · head {hh}")
    await page.go_back()
    await ready(page)
    await _choose_click(page, "open")

    # Click a neighbouring neuron: its page opens.
    other = await page.evaluate(
        f"window.cy.nodes().filter(n => n.data('type') === 'neuron' && n.id() !== '{key}')[0].id()")
    # (return nothing: a cytoscape collection is costly for Playwright to serialise)
    await page.evaluate("id => { window.cy.getElementById(id).emit('tap'); }", other)
    await ready(page)
    m, layer, index = other.split("/")
    assert page.url.endswith(f"#/neuron/{m}/{layer}/{index}")
    await expect(page.locator("h1")).to_contain_text(f"L{layer} · N{index}")

    # Search: a token of this neuron's N2G pattern finds it.
    tok = (await store.run("MATCH (:Neuron {key: $k})-[:HAS_PATTERN]->(p {role: 'activating'}) RETURN p.token AS t",
                           {"k": key}))[0]["t"]
    await page.click("nav a:text('Search')")
    await ready(page)
    await page.select_option(".search-form select[name=mode]", "activating")
    # Spaces are part of a token: typed with its leading space (quoted), the token is found.
    await page.fill(".search-form input[name=q]", f'"{tok}"')
    await page.click(".search-form button[type=submit]")
    await ready(page)
    hits = await store.run(
        "MATCH (n:Neuron {model: $m})-[:HAS_PATTERN]->(p:PatternNode {role: 'activating'}) "
        "WHERE toLower(p.token) = toLower($t) RETURN count(DISTINCT n) AS n", {"m": MODEL, "t": tok})
    await expect(page.locator("table.results-table tbody tr")).to_have_count(hits[0]["n"])
    # each matched (token, role) shows once per neuron
    for row in await page.locator("table.results-table tbody tr").all():
        chips = await row.locator(".tok-chip").all_inner_texts()
        assert len(chips) == len(set(chips))
    await expect(page.locator(f"table.results-table a[href='#/neuron/{MODEL}/1/4']")).to_have_count(1)
    await shot(page, "05-search-tokens")
    # The same search ordered by N2G score: best first.
    await page.select_option(".search-form select[name=mode]", "any")
    await page.select_option(".search-form select[name=order]", "score")
    await page.click(".search-form button[type=submit]")
    await ready(page)
    assert "order=score" in page.url
    scores = [float(t) for t in await page.locator("table.results-table tbody td.num").all_inner_texts()]
    assert scores and scores == sorted(scores, reverse=True)

    # Explanation search: a word from this neuron's explanation.
    await page.select_option(".search-form select[name=mode]", "explanation")
    word = expl[0]["t"].split()[2]
    await page.fill(".search-form input[name=q]", word)
    await page.click(".search-form button[type=submit]")
    await ready(page)
    await expect(page.locator("table.results-table tbody tr").first).to_be_visible()
    await expect(page.locator("table.results-table")).to_contain_text(word)
    await expect(page.locator("table.results-table mark").first).to_have_text(re.compile(word, re.I))
    await shot(page, "06-search-explanations")
    # Across every model: the same hits, each named with its model.
    n_hits = await page.locator("table.results-table tbody tr").count()
    await page.select_option(".search-form select[name=model]", "*")
    await page.click(".search-form button[type=submit]")
    await ready(page)
    await expect(page.locator("table.results-table tbody tr")).to_have_count(n_hits)
    await expect(page.locator("table.results-table tbody tr").first).to_contain_text(MODEL)
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


async def _choose_click(page: Page, mode: str) -> None:
    """Pick what a click on a drawn node does; the neighbourhood re-renders with it."""
    await page.select_option("select[name=click]", mode)
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy")


async def test_token_search_pages_through_every_hit(site: str, page: Page, store) -> None:
    """A common token's hits come a page at a time (the API gives at most 100 a request): the
    heading says more follow, "Show the next" appends the next page, and once the last is in
    every hit is shown once, in layer order, with the exact count."""
    rows = await store.run(
        "MATCH (n:Neuron {model: $m})-[:HAS_PATTERN]->(p:PatternNode) WHERE p.role <> 'ignore' AND p.token IS NOT NULL "
        "RETURN toLower(p.token) AS t, count(DISTINCT n) AS n ORDER BY n DESC, t LIMIT 1", {"m": MODEL})
    tok, n_hits = rows[0]["t"], rows[0]["n"]
    assert n_hits >= 5
    per = 2
    await page.goto(f"{site}/#/search?model={MODEL}&mode=any&q=%22{tok.replace(' ', '%20')}%22&order=layer&per={per}")
    await ready(page)
    body, more, title = page.locator("table.results-table tbody tr"), page.locator("button.more-hits"), page.locator(".results h2")
    await expect(body).to_have_count(per)
    await expect(title).to_contain_text(f"{per}+ neurons with")
    for shown in range(per, n_hits, per):
        await expect(more).to_be_visible()
        await more.click()
        await expect(body).to_have_count(min(shown + per, n_hits))
    await expect(more).to_be_hidden()
    await expect(title).to_have_text(re.compile(rf"^{n_hits} neurons with "))
    labels = await page.locator("table.results-table tbody tr td:first-child a").all_inner_texts()
    coords = [tuple(int(x) for x in re.findall(r"\d+", t)) for t in labels]
    assert len(set(coords)) == n_hits and coords == sorted(coords)
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


async def test_rank_by_an_imported_column_and_open_a_head(site: str, page: Page, store) -> None:
    # An imported column on layer 1 only, written the way importers write neuron columns.
    values = {f"{MODEL}/1/{i}": (i * 7 % D_MLP) / D_MLP for i in range(D_MLP)}
    await store.write("set_neuron_props", [{"key": k, "props": {"un_sparsity": v}} for k, v in values.items()])
    await page.goto(f"{site}/#/model/{MODEL}")
    await ready(page)
    option = page.locator("select[name=sort] optgroup[label='Imported columns'] option[value=un_sparsity]")
    await expect(option).to_have_text(f"un_sparsity ({D_MLP} neurons)")
    await expect(page.locator("select[name=sort] optgroup[label='Statistics'] option[value=kurt]")).to_have_count(1)
    await page.select_option("select[name=sort]", "un_sparsity")
    await ready(page)
    await expect(page.locator("th.sorted")).to_have_attribute("data-stat", "un_sparsity")
    keys = await page.locator("table.neurons tbody tr").evaluate_all("rs => rs.map(r => r.dataset.key)")
    assert keys == sorted(values, key=lambda k: (-values[k], int(k.split("/")[2])))
    await shot(page, "08-model-imported-column")

    # Heads: a grid of every layer's heads; one opens its page.
    n_heads = GRAPH["n_heads"]
    await expect(page.locator("table.heads-grid a[data-head]")).to_have_count(N_LAYERS * n_heads)
    await page.click("table.heads-grid tr[data-layer='1'] a[data-head='1']")
    await ready(page)
    assert page.url.endswith(f"#/head/{MODEL}/1/1")
    await expect(page.locator("h1")).to_contain_text("L1 · H1")
    await expect(page.locator(".layers a.on")).to_have_text("H1")
    for cls, pattern, kinds in (("reads", "(:Head {key: $h})<-[e:HEAD_COMPOSES]-(n:Neuron)", ["Q", "K", "V"]),
                                ("writes", "(:Head {key: $h})-[e:HEAD_COMPOSES]->(n:Neuron)", ["O"])):
        want = await store.run(f"MATCH {pattern} WHERE e.kind IN $kinds RETURN n.key AS key, e.weight AS w "
                               "ORDER BY abs(e.weight) DESC, n.key LIMIT 20", {"h": f"{MODEL}/L1H1", "kinds": kinds})
        shown = await page.locator(f"table.head-edges.{cls} tbody tr").evaluate_all("rs => rs.map(r => r.dataset.key)")
        assert want and len(shown) == len(want) and shown[0] == want[0]["key"]
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.nodes().length > 1")
    assert await page.evaluate(f"window.cy.getElementById('{MODEL}/L1H1').data('center')") is True
    await shot(page, "09-head")
    first = await page.locator("table.head-edges.reads tbody tr").first.get_attribute("data-key")
    await page.click("table.head-edges.reads tbody tr >> nth=0 >> a")
    await ready(page)
    assert page.url.endswith("#/neuron/" + first)
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


async def test_compare_two_neurons(site: str, page: Page, store) -> None:
    await page.goto(f"{site}/#/compare")
    await ready(page)
    await page.fill(".compare-form input[name=a]", f"{MODEL}/0/2")
    await page.fill(".compare-form input[name=b]", f"{MODEL}/1/4")
    await page.click(".compare-form button[type=submit]")
    await ready(page)
    assert page.url.endswith(f"#/compare/{MODEL}/0/2/{MODEL}/1/4")
    await expect(page.locator(".compare-col")).to_have_count(2)
    rows = await store.run("MATCH (n:Neuron) WHERE n.key IN $ks RETURN n.key AS key, n.kurt AS kurt",
                           {"ks": [f"{MODEL}/0/2", f"{MODEL}/1/4"]})
    kurt = {r["key"]: r["kurt"] for r in rows}
    cells = page.locator(".compare-stats tr[data-stat=kurt] td.num")
    a, b = float(await cells.nth(0).inner_text()), float(await cells.nth(1).inner_text())
    assert a == pytest.approx(kurt[f"{MODEL}/0/2"], rel=0.01) and b == pytest.approx(kurt[f"{MODEL}/1/4"], rel=0.01)
    # Both neurons' examples are shown, side by side.
    for side in ("a", "b"):
        await expect(page.locator(f".compare-col[data-side={side}] .examples[data-kind=max] .example").first).to_be_visible()
    # Strongest paths from A to B (and from B to A), each following its edges' directions, as the
    # API finds them: no A -> C <- B among them.
    q = ("query($a: ID!, $b: ID!) { paths(from: $a, to: $b, maxHops: 3, first: 3, directed: true) "
         "{ hops nodes { key } edges { source target type } } }")
    ab = (await gql(site, q, a=f"{MODEL}/0/2", b=f"{MODEL}/1/4"))["paths"]
    ba = (await gql(site, q, a=f"{MODEL}/1/4", b=f"{MODEL}/0/2"))["paths"]
    assert ab, "the synthetic graph is dense enough for a path of 3 hops from layer 0 to layer 1"
    for p in ab + ba:
        keys = [n["key"] for n in p["nodes"]]
        for (u, v), e in zip(zip(keys, keys[1:]), p["edges"]):
            assert (e["source"], e["target"]) == (u, v) or e["type"] in ("CORRELATES", "SIMILAR"), (keys, e)
    await expect(page.locator(".paths .path-list[data-from=A] .path")).to_have_count(len(ab))
    await expect(page.locator(".paths .path-list[data-from=B] .path")).to_have_count(len(ba))
    await expect(page.locator(".paths .path").first.locator(".path-edge")).to_have_count(ab[0]["hops"])
    await shot(page, "07-compare")
    # A bad key is refused in the form, plainly.
    await page.fill(".compare-form input[name=b]", "not a key")
    await page.click(".compare-form button[type=submit]")
    await expect(page.locator(".form-msg")).to_contain_text("model/layer/index")


async def test_errors_and_empty_states(site: str, page: Page) -> None:
    # Unknown neuron and model: the API's message, shown plainly.
    await page.goto(f"{site}/#/neuron/{MODEL}/1/999")
    await ready(page)
    await expect(page.locator(".state.error")).to_contain_text("no neuron")
    await shot(page, "08-error-neuron")
    await page.goto(f"{site}/#/model/nosuchmodel")
    await ready(page)
    await expect(page.locator(".state.error")).to_contain_text("unknown model")
    await page.goto(f"{site}/#/nowhere")
    await ready(page)
    await expect(page.locator(".state.error")).to_contain_text("no page")
    # A search with no hits: an empty state, not an error.
    await page.goto(f"{site}/#/search?model={MODEL}&mode=any&q=zzzz-not-a-token")
    await ready(page)
    await expect(page.locator(".results .state.empty")).to_contain_text("zzzz-not-a-token")
    # Neighbourhood with a minimum weight nothing passes.
    await page.goto(f"{site}/#/neighborhood/{MODEL}/1/4?min=1000")
    await ready(page)
    await expect(page.locator(".state.empty").first).to_contain_text("No edges")


async def test_empty_graph_and_narrow_window(browser: Browser, store, settings) -> None:
    # An empty graph says so rather than showing an empty table.
    async with serve(create_app(settings=settings, store=store)) as url:
        ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
        p = await ctx.new_page()
        await p.goto(f"{url}/")
        await ready(p)
        await expect(p.locator(".state.empty")).to_contain_text("No models")
        await ctx.close()
    # At 900px the pages still fit: no horizontal scrolling.
    await write_synthetic_graph(store, MODEL, **GRAPH)
    async with serve(create_app(settings=settings, store=store)) as url:
        ctx = await browser.new_context(viewport={"width": 900, "height": 800})
        p = await ctx.new_page()
        for name, route in [("model", f"#/model/{MODEL}"), ("neuron", f"#/neuron/{MODEL}/1/4"),
                            ("neighborhood", f"#/neighborhood/{MODEL}/1/4"), ("search", "#/search"),
                            ("compare", f"#/compare/{MODEL}/0/2/{MODEL}/1/4")]:
            await p.goto(f"{url}/{route}")
            await ready(p)
            width = await p.evaluate("document.documentElement.scrollWidth")
            assert width <= 900, (name, width)
            await shot(p, f"09-narrow-{name}")
        await ctx.close()


async def test_bare_neuron_shows_empty_states(browser: Browser, store, settings) -> None:
    # An imported model may have a neuron with nothing but its position: every section says so.
    from neurograph.domain import ModelInfo, layer_key, neuron_key

    await store.write("upsert_models", [ModelInfo("bare", n_layers=1, d_mlp=2).row()])
    await store.write("upsert_layers", [{"key": layer_key("bare", 0), "model": "bare", "layer": 0, "n_neurons": 2}])
    await store.write("upsert_neurons", [{"key": neuron_key("bare", 0, i), "model": "bare", "layer": 0, "index": i,
                                          "layer_key": layer_key("bare", 0),
                                          "props": {"max_corr": 0.91} if i == 0 else {}} for i in range(2)])
    async with serve(create_app(settings=settings, store=store)) as url:
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
        p = await ctx.new_page()
        await p.goto(f"{url}/#/neuron/bare/0/1")
        await ready(p)
        for text in ("No statistics stored", "No histogram stored", "No explanations", "No token effects",
                     "No N2G pattern graph", "No max-activating examples", "No min-activating examples"):
            await expect(p.locator(".state.empty", has_text=text)).to_have_count(1)
        assert await p.locator(".state.error").count() == 0
        await shot(p, "10-bare-neuron")
        # An importer's own columns are shown as further properties.
        await p.goto(f"{url}/#/neuron/bare/0/0")
        await ready(p)
        await expect(p.locator(".more-props [data-stat=max_corr] dd")).to_have_text("0.9100")
        # Its neighbourhood is the neuron alone.
        await p.goto(f"{url}/#/neighborhood/bare/0/1")
        await ready(p)
        await p.wait_for_function("document.body.dataset.graph === 'ready' && window.cy")
        assert await p.evaluate(UNITS + ".length") == 1
        await expect(p.locator(".state.empty").first).to_contain_text("No edges")
        # The model page: no neuron has a statistic to rank by, so they are listed by position.
        await p.goto(f"{url}/#/model/bare")
        await ready(p)
        keys = await p.locator("table.neurons tbody tr").evaluate_all("rs => rs.map(r => r.dataset.key)")
        assert keys == [neuron_key("bare", 0, 0), neuron_key("bare", 0, 1)]
        assert await p.locator("select[name=sort]").input_value() == ""
        await expect(p.locator("table.layers-table tbody tr")).to_have_count(1)
        await ctx.close()
