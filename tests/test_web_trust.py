"""Browser tests of what makes the neuron page trustworthy (issue 19): colours scaled per list
without position 0, histogram tails marked, quantiles named by level, role and community,
output tokens from both ends, raw bytes shown as bytes, Prev / Next across layers, errors with a
retry and no server paths, and a phone-width layout. Chromium through Playwright against a
real server over a synthetic graph, as in test_web.py.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from test_web import CHROMIUM, D_MLP, MODEL, N_LAYERS, browser, page, ready, shot, site  # noqa: F401

pytestmark = pytest.mark.browser
KEY = f"{MODEL}/1/4"


def alpha(css: str) -> float:
    """The alpha of a computed 'rgb(…)' / 'rgba(…)' colour."""
    nums = [float(x) for x in re.findall(r"[\d.]+", css)]
    return nums[3] if len(nums) == 4 else 1.0


async def test_colours_histogram_role_tokens(site: str, page: Page, store) -> None:
    # Make neuron 1/4 look like real data: a BOS value far above the rest in its top example,
    # a histogram whose range ends before the max and begins after the min, a raw-byte token.
    rows = await store.run(
        "MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max'}]->() RETURN a.rank AS rank, a.activations AS acts "
        "ORDER BY a.rank", {"k": KEY})
    acts = list(rows[0]["acts"])
    acts[0] = 1118.0
    await store.run("MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max', rank: $r}]->() SET a.activations = $a",
                    {"k": KEY, "r": rows[0]["rank"], "a": acts}, write=True)
    await store.run("MATCH (n:Neuron {key: $k}) SET n.max = 1187.0, n.min = -9.5", {"k": KEY}, write=True)
    tok = await store.run("MATCH (:Neuron {key: $k})-[e:TOKEN_EFFECT {kind: 'output'}]->(t) "
                          "RETURN t.key AS t, e.weight AS w ORDER BY e.weight ASC LIMIT 1", {"k": KEY})
    await store.run("MATCH (t:Token {key: $t}) SET t.text = $x", {"t": tok[0]["t"], "x": "\ufffd"}, write=True)
    await store.run("MATCH (:Neuron {key: $k})-[e:TOKEN_EFFECT {kind: 'output'}]->(:Token {key: $t}) SET e.weight = -3.0",
                    {"k": KEY, "t": tok[0]["t"]}, write=True)
    props = (await store.run("MATCH (n:Neuron {key: $k}) RETURN n", {"k": KEY}))[0]["n"]

    await page.goto(f"{site}/#/neuron/{KEY}")
    await ready(page)

    # Colours: the max list's scale leaves position 0 out, so the pivots are full red, and says so.
    every = await store.run("MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max'}]->() RETURN a.activations AS a",
                            {"k": KEY})
    top = max(v for r in every for v in r["a"][1:])
    scale = page.locator(".card:has(.examples[data-kind=max]) .scale")
    assert float(await scale.get_attribute("data-max")) == pytest.approx(top, rel=1e-6)
    await expect(scale).to_contain_text("position 0 left out")
    await expect(scale).to_contain_text("1,118")
    first = page.locator(".examples[data-kind=max] .example").first
    await first.locator("button").click()  # the full context shows position 0
    bos = first.locator(".ctx.full .tok[data-pos='0']")
    await expect(bos).to_have_class(re.compile(r"\bbeyond\b"))
    best = await page.locator(".examples[data-kind=max] .example .ctx.short .tok.pivot").evaluate_all(
        "ts => ts.map(t => +t.dataset.value)")
    strongest = page.locator(".examples[data-kind=max] .example .ctx.short .tok.pivot").nth(best.index(max(best)))
    assert alpha(await strongest.evaluate("e => getComputedStyle(e).backgroundColor")) > 0.99
    # The min list has its own (negative) scale: its strongest pivot is full blue, not a ghost.
    mins = await page.locator(".examples[data-kind=min] .example .ctx.short .tok.pivot").evaluate_all(
        "ts => ts.map(t => +t.dataset.value)")
    low = page.locator(".examples[data-kind=min] .example .ctx.short .tok.pivot").nth(mins.index(min(mins)))
    bg = await low.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg.startswith("rgb(37, 99, 235") or alpha(bg) > 0.99, bg

    # Histogram: above the statistics, its end bins marked as holding the tails, quantiles named.
    order = await page.evaluate(
        "() => { const h = document.querySelector('svg.histogram'), s = document.querySelector('.stats');"
        " return !!(h.compareDocumentPosition(s) & Node.DOCUMENT_POSITION_FOLLOWING); }")
    assert order, "the histogram comes before the stat tiles"
    await expect(page.locator("svg.histogram rect.bar.overflow")).to_have_count(1 if props["hist_counts"][-1] else 0)
    await expect(page.locator("svg.histogram .tail-label.overflow")).to_contain_text("max 1,187")
    await expect(page.locator("svg.histogram .tail-label.underflow")).to_contain_text("min -9.5")
    labels = await page.locator("svg.histogram line.marker").evaluate_all("ls => ls.map(l => l.dataset.label)")
    assert labels == [f"p{round(lv * 100, 3):g}" for lv in props["quantile_levels"]]
    for lv in props["quantile_levels"]:
        await expect(page.locator(f".stats [data-stat='p{round(lv * 100, 3):g}']")).to_have_count(1)

    # Role and community from the topology.
    await expect(page.locator(".role-line .pill.role")).to_have_text(props["role"])
    await expect(page.locator(".role-line .pill.community")).to_have_text(f"#{props['community']}")

    # Output tokens it lowers, beside those it raises; the raw byte shown as a byte.
    low_chips = page.locator(".tok-group[data-kind=outputBottom] .tok-chip")
    await expect(low_chips.first).to_contain_text("<0x??>")
    await expect(low_chips.first).to_contain_text("-3")
    assert "\ufffd" not in await page.locator(".tok-group").first.inner_text()
    await shot(page, "11-neuron-trust")
    hist = page.locator("svg.histogram")
    await hist.screenshot(path=str(__import__("test_web").SHOTS / "11-histogram.png"))
    assert not page.js_errors, page.js_errors  # type: ignore[attr-defined]


async def test_more_examples_asked_than_stored_says_so(site: str, page: Page, store) -> None:
    n = (await store.run("MATCH (:Neuron {key: $k})-[a:ACTIVATES_ON {kind: 'max'}]->() RETURN count(a) AS n",
                         {"k": KEY}))[0]["n"]
    await page.goto(f"{site}/#/neuron/{KEY}?examples=50")
    await ready(page)
    await expect(page.locator(".examples[data-kind=max] .example")).to_have_count(n)
    await expect(page.locator(".card:has(.examples[data-kind=max]) .stored-note")).to_contain_text(
        "all the graph stores for this neuron (50 asked for)")


async def test_prev_next_across_layers(site: str, page: Page) -> None:
    last = D_MLP - 1
    await page.goto(f"{site}/#/neuron/{MODEL}/0/{last}")
    await ready(page)
    nxt = page.locator(".step.next")
    await expect(nxt).to_have_attribute("href", f"#/neuron/{MODEL}/1/0")
    await nxt.click()
    await ready(page)
    assert page.url.endswith(f"#/neuron/{MODEL}/1/0")
    await expect(page.locator(".step.prev")).to_have_attribute("href", f"#/neuron/{MODEL}/0/{last}")
    await page.goto(f"{site}/#/neuron/{MODEL}/{N_LAYERS - 1}/{last}")
    await ready(page)
    await expect(page.locator(".step.next")).to_have_attribute("aria-disabled", "true")
    assert await page.locator(".step.next").get_attribute("href") is None
    await page.goto(f"{site}/#/neuron/{MODEL}/0/0")
    await ready(page)
    await expect(page.locator(".step.prev")).to_have_attribute("aria-disabled", "true")


async def test_errors_hide_paths_and_retry(site: str, page: Page) -> None:
    # The store is away: the API's message names its socket; the page must not.
    calls = {"n": 0}

    async def broken(route):
        calls["n"] += 1
        if calls["n"] == 1:
            await route.fulfill(status=200, content_type="application/json", body=(
                '{"data": null, "errors": [{"message": "the graph store is unavailable: Error 2 connecting to '
                'unix socket: /home/someone/.local/share/neurograph/falkordb/falkordb.sock. No such file"}]}'))
        else:
            await route.continue_()

    await page.route("**/graphql", broken)
    await page.goto(f"{site}/#/model/{MODEL}")
    await ready(page)
    err = page.locator(".state.error")
    await expect(err).to_contain_text("the graph store is unavailable")
    assert "/home/" not in await err.inner_text() and ".sock" not in await err.inner_text()
    # No "Loading…" left beside the error.
    assert "Loading" not in await page.locator("#app").inner_text()
    await shot(page, "12-error-retry")
    await err.locator("button.retry").click()
    await ready(page)
    await expect(page.locator("table.neurons tbody tr").first).to_be_visible()
    await expect(page.locator(".state.error")).to_have_count(0)


async def test_phone_width(browser: Browser, site: str) -> None:
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2)
    p = await ctx.new_page()
    for name, route in [("models", "#/"), ("model", f"#/model/{MODEL}"), ("neuron", f"#/neuron/{KEY}"),
                        ("neighborhood", f"#/neighborhood/{KEY}"), ("search", f"#/search?model={MODEL}&mode=any&q=the"),
                        ("compare", f"#/compare/{MODEL}/0/2/{KEY}")]:
        await p.goto(f"{site}/{route}")
        await ready(p)
        width = await p.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (name, width)
        # Wide tables scroll inside themselves instead of widening the page.
        for t in await p.locator("table.data").all():
            box = await t.bounding_box()
            assert box is None or box["x"] + box["width"] <= 391, (name, box)
        await shot(p, f"13-phone-{name}")
        if name == "neighborhood":
            await p.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.nodes().length > 1")
            box = await p.locator(".cy").first.bounding_box()
            assert box and box["width"] <= 390 and box["height"] >= 300, box
            # Every node is inside the drawn box after the layout (the graph fits the screen).
            ext = await p.evaluate("(() => { const b = window.cy.elements().renderedBoundingBox();"
                                   " return [b.x1, b.x2, window.cy.width()]; })()")
            assert ext[0] >= -1 and ext[1] <= ext[2] + 1, ext
    await ctx.close()


async def test_neighbourhood_per_kind_and_layer_labels(site: str, page: Page, store) -> None:
    # Virtual weights far above the rest, as on real graphs: every stored kind still shows.
    await store.run("MATCH ()-[e:COMPOSES {kind: 'virtual'}]->() SET e.weight = e.weight * 100", {}, write=True)
    await page.goto(f"{site}/#/neighborhood/{KEY}")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.nodes().length > 1")
    stored = await store.run("MATCH (n:Neuron {key: $k})-[e]-(m) WHERE (m:Neuron OR m:Head) "
                             "AND type(e) IN ['COMPOSES', 'CORRELATES', 'SIMILAR', 'HEAD_COMPOSES'] "
                             "RETURN DISTINCT e.kind AS kind, startNode(e).key = $k AS out", {"k": KEY})
    drawn = await page.evaluate(f"window.cy.edges().map(e => [e.data('kind'), e.data('source') === '{KEY}'])")
    assert {tuple(x) for x in drawn} == {(r["kind"], r["out"]) for r in stored}
    # Inputs as well as outputs.
    assert {out for _, out in drawn} == {True, False}
    # Each layer's column is labelled, above its nodes.
    layers = sorted(set(await page.evaluate("window.cy.nodes().map(n => n.data('layer'))")))
    await expect(page.locator(".layer-axis .layer-label")).to_have_count(len(layers))
    assert await page.locator(".layer-axis .layer-label").all_inner_texts() == [f"layer {x}" for x in layers]
    for layer in layers:
        lx = await page.locator(f".layer-label[data-layer='{layer}']").evaluate(
            "e => { const r = e.getBoundingClientRect(); return r.left + r.width / 2; }")
        xs = await page.evaluate(f"window.cy.nodes().filter(n => n.data('layer') === {layer})"
                                 ".map(n => n.renderedPosition().x + window.cy.container().getBoundingClientRect().left)")
        assert all(abs(x - lx) < 3 for x in xs), (layer, lx, xs)
    await shot(page, "15-neighbourhood-per-kind")



async def test_search_says_when_there_are_no_explanations_and_chips_once(browser: Browser, site: str, store) -> None:  # noqa: F811
    from neurograph.domain import ModelInfo, layer_key, neuron_key

    await store.write("upsert_models", [ModelInfo("bare", n_layers=1, d_mlp=2).row()])
    await store.write("upsert_layers", [{"key": layer_key("bare", 0), "model": "bare", "layer": 0, "n_neurons": 2}])
    await store.write("upsert_neurons", [{"key": neuron_key("bare", 0, i), "model": "bare", "layer": 0, "index": i,
                                          "layer_key": layer_key("bare", 0), "props": {}} for i in range(2)])
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    p = await ctx.new_page()
    await p.goto(f"{site}/#/search?model=bare&mode=explanation&q=river")
    await ready(p)
    await expect(p.locator(".no-explanations")).to_contain_text("bare has no explanations stored")
    await shot(p, "16-search-no-explanations")
    # The synthetic model has explanations: a miss there is an ordinary "no match".
    await p.goto(f"{site}/#/search?model={MODEL}&mode=explanation&q=zzzqqq")
    await ready(p)
    await expect(p.locator(".results .state.empty")).to_contain_text("matches")
    await expect(p.locator(".no-explanations")).to_have_count(0)
    # A result row shows each (token, role) once with its count, the searched token first.
    chips = await p.evaluate("""async () => {
        const { matchChips } = await import('/js/pages/search.js');
        const ms = [...Array(30)].map(() => ({ text: ' the', role: 'important' }))
          .concat([{ text: ' river', role: 'activating' }, { text: ' the', role: 'activating' }]);
        const el = matchChips(ms, new Set([' river']));  // tokens keep their spaces: ' river' is what was searched
        return [...el.querySelectorAll('.tok-chip')].map(c => [c.textContent, c.dataset.count, c.classList.contains('hit')]);
    }""")
    assert chips == [[" riveractivating", "1", True], [" theimportant ×30", "30", False], [" theactivating", "1", False]]
    await ctx.close()
