"""The neighbourhood view draws corpus circuits (ATTRIBUTES_TO, `neurograph circuits`) as a kind
of their own: a type checkbox, a colour and a legend entry, in real chromium."""

from __future__ import annotations

from playwright.async_api import Page, expect

from neurograph.domain import neuron_key
from test_web import MODEL, browser, page, ready, site  # noqa: F401

KEY = f"{MODEL}/1/4"


async def test_circuits_are_a_kind_of_their_own(site: str, page: Page, store) -> None:  # noqa: F811
    ends = [neuron_key(MODEL, 2, i) for i in (1, 2)] + [neuron_key(MODEL, 3, 5)]
    await store.write("upsert_attributes", [{"src": KEY, "dst": d, "mean": w, "abs_mean": abs(w), "count": 4}
                                            for d, w in zip(ends, (0.9, -0.6, 0.3))])
    await page.goto(f"{site}/#/neighborhood/{KEY}")
    await ready(page)
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.nodes().length > 1")
    box = page.locator("input[name=type][value=ATTRIBUTES_TO]")
    await expect(box).to_be_checked()
    drawn = await page.evaluate("window.cy.edges().filter(e => e.data('kind') === 'attribution')"
                                ".map(e => [e.data('source'), e.data('target')])")
    assert sorted(map(tuple, drawn)) == sorted((KEY, d) for d in ends)  # 3 per kind and direction: all of them
    legend = page.locator(".legend [data-kind=attribution]")
    await expect(legend).to_be_visible()
    colour = await legend.locator(".sw").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(13, 148, 136)"  # its own, not the fallback grey of kinds without one
    # Circuits alone: untick every other type.
    for t in ("COMPOSES", "CORRELATES", "HEAD_COMPOSES", "SIMILAR"):
        await page.locator(f"input[name=type][value={t}]").uncheck()
        await ready(page)
    assert page.url.endswith("types=ATTRIBUTES_TO") or "types=ATTRIBUTES_TO&" in page.url
    # the redrawn graph (the one before it had every kind): only circuits, all three
    await page.wait_for_function("document.body.dataset.graph === 'ready' && window.cy && window.cy.edges().length > 0"
                                 " && window.cy.edges().every(e => e.data('kind') === 'attribution')")
    assert await page.evaluate("window.cy.edges().length") == len(ends)
    assert not page.js_errors  # type: ignore[attr-defined]
