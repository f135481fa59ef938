"""Quantile-sampled examples (Neuronpedia's "quantiles"): a second pass over the corpus bins each
context by its max activation into equal intervals of the neuron's range (0, max] and keeps a
uniform sample per interval. Checked against an independent numpy reference on the tiny model,
then stored, served over GraphQL and shown on the web UI's neuron page; and the longer context
option (128 tokens) end to end."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from playwright.async_api import async_playwright, expect

from loaders.activations import harvest, iter_mlp_activations
from loaders.build import build_from_model
from loaders.corpus import corpus_contexts
from loaders.model import tiny_model
from neurograph.api.app import create_app
from neurograph.domain import neuron_key
from web_server import serve

K, BINS = 3, 4
MIN_COUNT = 3


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def ctx(model):
    return corpus_contexts(model, "default", n_tokens=60 * 32, ctx_len=32)


@pytest.fixture(scope="module")
def acts(model, ctx) -> np.ndarray:
    """[L, N, T, D] activations straight from the forward pass."""
    return torch.cat([a for _, _, a in iter_mlp_activations(model, ctx.tokens, batch_size=8)], dim=1).numpy()


def _harvest(model, ctx, **kw):
    kw = {"top_k": 2, "batch_size": 8, "min_token_count": MIN_COUNT, "progress": False, "quantile_k": K,
          "quantile_bins": BINS, **kw}
    return harvest(model, ctx.tokens, **kw)


@pytest.fixture(scope="module")
def result(model, ctx):
    return _harvest(model, ctx)


def reference(acts: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each context's max (BOS left out), each neuron's max and each context's interval of
    (0, max] in `bins` equal parts (-1: a max <= 0), by plain numpy."""
    ctx_max = acts[:, :, 1:, :].max(axis=2)                  # [L, N, D]
    top = ctx_max.max(axis=1)                                # [L, D]
    b = np.floor(ctx_max.astype(np.float64) / top[:, None, :] * bins).astype(np.int64)
    b = np.minimum(b, bins - 1)
    return ctx_max, top, np.where(ctx_max > 0, b, -1)


def test_every_sampled_context_lies_in_its_interval_and_the_intervals_cover_the_range(result, acts):
    ctx_max, top, b = reference(acts, BINS)
    L, N, D = ctx_max.shape
    assert result.quantile_ctx.shape == (L, D, BINS, K)
    checked = 0
    for l in range(L):
        for i in range(D):
            edges = result.quantile_edges[l, i]
            # the intervals tile (0, max]: from 0 to the neuron's max in equal steps
            assert edges[0] == 0 and edges[-1] == pytest.approx(top[l, i], rel=1e-6)
            np.testing.assert_allclose(np.diff(edges), top[l, i] / BINS, rtol=1e-5)
            # every context that fires (max > 0) is counted in exactly one interval
            assert result.quantile_count[l, i].sum() == (ctx_max[l, :, i] > 0).sum()
            for j in range(BINS):
                members = np.flatnonzero(b[l, :, i] == j)
                assert result.quantile_count[l, i, j] == members.size
                got = result.quantile_ctx[l, i, j]
                got = got[got >= 0]
                # as many as the interval holds, up to K, all from it, distinct
                assert got.size == min(K, members.size) and set(got) <= set(members)
                assert len(set(got)) == got.size
                m = ctx_max[l, got, i]
                assert np.all(m >= edges[j] - 1e-6) and np.all(m <= edges[j + 1] + 1e-6)
                assert np.all(np.diff(m) <= 0), "highest max first within an interval"
                for s, c in enumerate(got):  # the neuron's activations over the whole context
                    np.testing.assert_allclose(result.quantile_acts[l, i, j, s], acts[l, c, :, i], rtol=1e-6)
                    assert result.quantile_pivot[l, i, j, s] == 1 + acts[l, c, 1:, i].argmax()
                checked += got.size
    assert checked > L * D  # the test saw real samples, not empty intervals


def test_the_sample_is_uniform_within_an_interval(result, acts):
    """Where an interval holds more contexts than it keeps, the kept ones sit anywhere in it: their
    mean position among the interval's members (0 = earliest, 1 = latest) is about 1/2, not
    skewed to the first contexts of the corpus or to the largest activations."""
    ctx_max, _, b = reference(acts, BINS)
    pos, by_value = [], []
    L, _, D = ctx_max.shape
    for l in range(L):
        for i in range(D):
            for j in range(BINS):
                members = np.flatnonzero(b[l, :, i] == j)
                if members.size <= K:
                    continue
                got = result.quantile_ctx[l, i, j]
                order = members[np.argsort(ctx_max[l, members, i], kind="stable")]
                for c in got[got >= 0]:
                    pos.append(np.flatnonzero(members == c)[0] / (members.size - 1))
                    by_value.append(np.flatnonzero(order == c)[0] / (members.size - 1))
    assert len(pos) > 200
    # a uniform draw: mean 1/2 with standard error ~ 0.29 / sqrt(n)
    tol = 4 * 0.29 / np.sqrt(len(pos))
    assert abs(np.mean(pos) - 0.5) < tol and abs(np.mean(by_value) - 0.5) < tol


def test_deterministic_for_a_seed_any_batch_size_and_after_a_resume(model, ctx, result, tmp_path):
    again = _harvest(model, ctx, batch_size=5)
    np.testing.assert_array_equal(again.quantile_ctx, result.quantile_ctx)
    np.testing.assert_array_equal(again.quantile_count, result.quantile_count)
    other = _harvest(model, ctx, seed=1)
    np.testing.assert_array_equal(other.quantile_count, result.quantile_count)  # same intervals
    assert not np.array_equal(other.quantile_ctx, result.quantile_ctx)          # another draw
    # interrupted inside the second pass (8 contexts a batch: 8 batches for the first), resumed
    assert _harvest(model, ctx, checkpoint_dir=tmp_path, checkpoint_every=1, max_batches=10) is None
    resumed = _harvest(model, ctx, checkpoint_dir=tmp_path)
    np.testing.assert_array_equal(resumed.quantile_ctx, result.quantile_ctx)
    np.testing.assert_array_equal(resumed.quantile_acts, result.quantile_acts)
    np.testing.assert_array_equal(resumed.top_max_ctx, result.top_max_ctx)


def test_bad_settings_are_refused_before_any_work(model, ctx):
    with pytest.raises(ValueError, match="quantile_bins"):
        _harvest(model, ctx, quantile_bins=0)
    with pytest.raises(ValueError, match="layers"):
        _harvest(model, ctx, layers=[7])


NEURON_QUANTILES = """query($model: String!, $layer: Int!, $index: Int!) {
  neuron(model: $model, layer: $layer, index: $index) {
    examples(kind: QUANTILE, first: 50) { totalCount edges { node {
      key rank tokens activations maxActivation pivot dataIndex bin binLow binHigh binCount } } }
    random: examples(kind: RANDOM, first: 5) { edges { node { bin binLow } } } } }"""


async def test_stored_served_and_shown_on_the_neuron_page(store, settings, model, ctx, result, tmp_path):
    summary = await build_from_model(store, model, ctx, top_k=2, batch_size=8, min_token_count=MIN_COUNT,
                                     checkpoint_dir=tmp_path, progress=False, random_k=1, quantile_k=K,
                                     quantile_bins=BINS)
    L, D = model.info.n_layers, model.info.d_mlp
    n_q = int((result.quantile_ctx >= 0).sum())
    assert summary["activations"] == 2 * 2 * L * D + L * D + n_q
    assert not list(tmp_path.glob("harvest-*")), "the checkpoint (both passes) is removed after the write"
    layer, index = 1, int(np.argmax(result.quantile_count[1].min(axis=1)))  # a neuron with every interval used
    async with serve(create_app(settings=settings, store=store)) as url:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{url}/graphql", json={"query": NEURON_QUANTILES,
                                                     "variables": {"model": model.name, "layer": layer, "index": index}})
        body = r.json()
        assert not body.get("errors"), body
        conn = body["data"]["neuron"]["examples"]
        got = [e["node"] for e in conn["edges"]]
        want = result.quantile_ctx[layer, index]
        assert conn["totalCount"] == len(got) == int((want >= 0).sum())
        for ex in got:
            j, s = divmod(ex["rank"], K)
            assert ex["bin"] == j and ex["dataIndex"] == want[j, s]
            assert ex["binLow"] == pytest.approx(result.quantile_edges[layer, index, j], rel=1e-6)
            assert ex["binHigh"] == pytest.approx(result.quantile_edges[layer, index, j + 1], rel=1e-6)
            assert ex["binCount"] == result.quantile_count[layer, index, j]
            assert ex["binLow"] - 1e-6 <= ex["maxActivation"] <= ex["binHigh"] + 1e-6
            np.testing.assert_allclose(ex["activations"], result.quantile_acts[layer, index, j, s], rtol=1e-6)
        # other kinds carry no interval
        assert all(e["node"]["bin"] is None and e["node"]["binLow"] is None
                   for e in body["data"]["neuron"]["random"]["edges"])

        # The neuron page: a "Quantiles" card, one group per interval, highest first, with bounds and counts.
        async with async_playwright() as pw:
            b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = await (await b.new_context(viewport={"width": 1280, "height": 900})).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{url}/#/neuron/{model.name}/{layer}/{index}")
            await page.wait_for_function("document.body.dataset.ready === '1'")
            card = page.locator("section.quantiles")
            await expect(card.locator("h2")).to_have_text("Quantiles")
            groups = card.locator(".quantile-bin")
            await expect(groups).to_have_count(BINS)
            assert await groups.evaluate_all("gs => gs.map(g => +g.dataset.bin)") == list(range(BINS))[::-1]
            top_group = groups.first
            await expect(top_group.locator(".example")).to_have_count(int((want[BINS - 1] >= 0).sum()))
            await expect(top_group.locator("h3")).to_contain_text(f"of {result.quantile_count[layer, index, BINS - 1]}")
            await expect(top_group.locator(".example .ctx.short .tok.pivot")).to_have_count(
                int((want[BINS - 1] >= 0).sum()))
            assert not errors, errors
            await b.close()
    # Rebuilding writes the same edges (idempotent MERGE on kind and rank).
    again = await build_from_model(store, model, ctx, top_k=2, batch_size=8, min_token_count=MIN_COUNT,
                                   checkpoint_dir=tmp_path, progress=False, random_k=1, quantile_k=K,
                                   quantile_bins=BINS)
    n = await store.run("MATCH (:Neuron)-[e:ACTIVATES_ON {kind: 'quantile'}]->() RETURN count(e) AS c")
    assert again["activations"] == summary["activations"] and n == [{"c": n_q}]


async def test_contexts_of_128_tokens_end_to_end(store, settings, tmp_path):
    """The longer context option: `build --ctx-len 128` stores and serves 128-token examples."""
    from loaders.pipeline import build

    m = tiny_model(seed=1, n_layers=2, d_mlp=16, d_model=32, n_heads=2)
    summary = await build(settings, model=m.name, n_tokens=12 * 128, ctx_len=128, top_k=2, edge_k=2, random_k=1,
                          quantile_k=1, quantile_bins=3, analyses=["activations", "correlation"],
                          store=store, loaded=m, progress=False)
    assert summary["activations"]["ctx_len"] == 128 and summary["activations"]["contexts"] == 12
    lens = await store.run("MATCH (:Neuron)-[e:ACTIVATES_ON]->(x:Example) "
                           "RETURN DISTINCT e.kind AS kind, size(e.activations) AS a, size(x.tokens) AS t ORDER BY kind")
    assert {r["kind"] for r in lens} == {"max", "min", "random", "quantile"}
    assert all(r["a"] == 128 and r["t"] == 128 for r in lens)
    [mrow] = await store.run("MATCH (m:Model {key: $k}) RETURN m.ctx_len AS c", {"k": m.name})
    assert mrow["c"] == 128
    async with serve(create_app(settings=settings, store=store)) as url:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{url}/graphql", json={"query": NEURON_QUANTILES,
                                                     "variables": {"model": m.name, "layer": 1, "index": 3}})
    ex = r.json()["data"]["neuron"]["examples"]["edges"]
    assert ex and all(len(e["node"]["tokens"]) == 128 and len(e["node"]["activations"]) == 128 for e in ex)
    assert all(0 <= e["node"]["pivot"] < 128 for e in ex)
    k = neuron_key(m.name, 1, 3)
    assert await store.run("MATCH (:Neuron {key: $k})-[e:ACTIVATES_ON {kind: 'max', rank: 0}]->(x) "
                           "RETURN x.data_index >= 0 AS ok", {"k": k}) == [{"ok": True}]
