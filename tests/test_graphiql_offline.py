"""GraphiQL at /graphql works with no internet: chromium with every non-loopback request
aborted loads it from the server's own /vendor/ (npm packages, `npm run vendor`), and runs a
query against the API."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.async_api import Browser, Route, expect

from test_web import MODEL, SHOTS, browser, site  # noqa: F401

pytestmark = pytest.mark.browser


async def test_graphiql_loads_and_runs_a_query_offline(browser: Browser, site: str) -> None:  # noqa: F811
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    blocked: list[str] = []

    async def only_loopback(route: Route) -> None:
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    await ctx.route("**/*", only_loopback)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{site}/graphql?q={{models{{name%20neuronCount}}}}")
    # GraphiQL rendered (React replaced "Loading…"), with its editor and the Run button.
    run = page.locator(".graphiql-execute-button")
    await expect(run).to_be_visible(timeout=20_000)
    await expect(page.locator("#graphiql")).not_to_have_text("Loading…")
    await run.click()
    result = page.locator(".result-window")
    await expect(result).to_contain_text(f'"name": "{MODEL}"', timeout=10_000)
    await expect(result).to_contain_text('"neuronCount"')
    # The schema came through introspection: the docs explorer lists the root fields.
    await page.click("button[aria-label='Show Documentation Explorer']")
    await expect(page.locator(".graphiql-doc-explorer")).to_contain_text("Query")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "14-graphiql-offline.png"))
    assert not blocked, blocked  # nothing even tried to leave the machine
    assert not errors, errors
    await ctx.close()
