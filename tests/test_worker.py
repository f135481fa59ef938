"""The model worker: its numbers against plain transformers, steering against a hook applied by
hand, the top example of a neuron ranking that neuron first, and the worker behind the API
(a real subprocess): GraphQL fields, limits, and a kill -9 the API survives."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import numpy as np
import pytest
import torch

from loaders.activations import harvest
from loaders.corpus import corpus_contexts
from loaders.model import tiny_model
from loaders.worker import BadRequest, Limits, ModelOps
from neurograph.api.app import create_app
from neurograph.worker import WorkerProcess

TEXT = "In the beginning God created the heaven and the earth."


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def ops(model):
    return ModelOps(model)


def _down_proj_inputs(model, ids: list[int]) -> torch.Tensor:
    """hook_post by plain transformers: the input of each layer's down_proj. [T, L, D]"""
    hf = model.bridge.original_model
    got = {}
    handles = [layer.mlp.down_proj.register_forward_pre_hook(lambda mod, args, l=l: got.__setitem__(l, args[0][0]))
               for l, layer in enumerate(hf.model.layers)]
    try:
        with torch.no_grad():
            hf(torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    return torch.stack([got[l] for l in range(len(hf.model.layers))], dim=1)


def test_activations_match_a_plain_transformers_forward(model, ops):
    r = ops.activations(TEXT, [[0, 3], [1, 77], [1, 127]])
    ids = model.to_tokens(TEXT, prepend_bos=True)
    assert r["tokens"] == model.token_strs(ids)
    ref = _down_proj_inputs(model, ids)
    for n in r["neurons"]:
        np.testing.assert_allclose(n["activations"], ref[:, n["layer"], n["index"]].numpy(), rtol=1e-4, atol=1e-5)

    run = ops.run_text(TEXT, top=5)
    pos = 3
    flat = ref[pos].reshape(-1)
    best = flat.topk(5).indices.tolist()
    assert [(e["layer"] * model.info.d_mlp + e["index"]) for e in run["tokens"][pos]["top"]] == best
    logits = model.bridge.original_model(torch.tensor([ids])).logits[0, -1]
    assert run["prediction"][0]["id"] == int(logits.argmax())


def test_steering_matches_a_hook_applied_by_hand(model, ops):
    layer, index, value, n = 1, 5, 40.0, 6
    r = ops.steer(TEXT, [{"layer": layer, "index": index, "value": value}], max_new_tokens=n)
    hf = model.bridge.original_model

    def clamp(mod, args):
        x = args[0].clone()
        x[..., index] = value
        return (x,)

    def greedy(hooked: bool) -> tuple[list[int], torch.Tensor]:
        h = hf.model.layers[layer].mlp.down_proj.register_forward_pre_hook(clamp) if hooked else None
        try:
            ids, first = model.to_tokens(TEXT, prepend_bos=True), None
            start = len(ids)
            with torch.no_grad():
                for _ in range(n):
                    last = hf(torch.tensor([ids])).logits[0, -1]
                    first = last if first is None else first
                    ids.append(int(last.argmax()))
            return ids[start:], first
        finally:
            if h is not None:
                h.remove()

    base, base_first = greedy(False)
    steered, steer_first = greedy(True)
    assert r["baseline_tokens"] == model.token_strs(base) and r["steered_tokens"] == model.token_strs(steered)
    diff = steer_first - base_first
    assert r["promoted"][0]["id"] == int(diff.argmax())
    assert r["promoted"][0]["change"] == pytest.approx(float(diff.max()), rel=1e-3, abs=1e-4)
    assert r["suppressed"][0]["id"] == int(diff.argmin())


def _top_examples_rank_their_neurons_first(model, neurons, n_contexts: int = 32) -> int:
    """runText on a neuron's top example (as text) finds the neuron first at the example's
    pivot, relative to its max, with the harvested activation. Returns neurons checked."""
    ctx = corpus_contexts(model, "default", n_tokens=24 * n_contexts, ctx_len=24)
    res = harvest(model, ctx.tokens, top_k=2, batch_size=8, progress=False)
    ops = ModelOps(model, res.max.astype(float))
    checked = 0
    for layer, index in neurons:
        c, pivot = int(res.top_max_ctx[layer, index, 0]), int(res.top_max_pivot[layer, index, 0])
        ids = ctx.tokens[c].tolist()
        text = model.tokenizer.decode(ids[1:])  # the context after its BOS, as a user would paste it
        if pivot == 0 or model.to_tokens(text, prepend_bos=True) != ids:
            continue  # BOS (where many neurons peak), or text that does not tokenize back to the same ids
        run = ops.run_text(text, top=50)
        ranked = run["tokens"][pivot]["top_relative"]
        mine = ops.activations(text, [[layer, index]])["neurons"][0]["activations"][pivot]
        # its activation there is its stored max, so its relative activation is 1: the top, tied
        # with every neuron that also peaks on this token (on a small corpus, often hundreds),
        # up to float rounding (a batch of one vs the harvest's batches)
        assert mine == pytest.approx(float(res.max[layer, index]), rel=1e-3, abs=1e-4)
        assert ranked[0]["relative"] == pytest.approx(1.0, abs=1e-3)
        if (layer, index) not in [(e["layer"], e["index"]) for e in ranked]:
            assert ranked[-1]["relative"] == pytest.approx(1.0, abs=1e-3)  # beyond the list only by a tie
        checked += 1
    return checked


def test_a_neurons_top_example_ranks_it_first(model):
    assert _top_examples_rank_their_neurons_first(model, [(0, 7), (1, 3), (1, 100)]) >= 2


@pytest.mark.model
def test_smollm2_top_example_ranks_its_neuron_first():
    from loaders.model import load_model

    assert _top_examples_rank_their_neurons_first(load_model(), [(0, 11), (12, 700), (29, 1487)], 16) >= 2


def test_bad_requests_are_refused(ops):
    for call in (lambda: ops.run_text(""), lambda: ops.activations(TEXT, [[9, 0]]),
                 lambda: ops.steer(TEXT, [{"layer": 0, "index": 1}]),
                 lambda: ops.steer(TEXT, [{"layer": 0, "index": 1, "value": 1}], max_new_tokens=1000),
                 lambda: ModelOps(ops.model, limits=Limits(max_tokens=4)).run_text(TEXT)):
        with pytest.raises(BadRequest):
            call()


RUN = """query($m: String!, $t: String!) { runText(model: $m, text: $t, top: 3) {
  tokens { token top { layer index activation neuron { key } } } prediction { token probability } } }"""
ACTS = """query($m: String!, $t: String!, $n: [ID!]!) { neuronActivations(model: $m, text: $t, neurons: $n) {
  tokens neurons { layer index activations maxActivation relative } } }"""
ATTR = """query($m: String!, $p: String!) { attribute(model: $m, prompt: $p, maxNeurons: 20) {
  key target nodes { id kind influence } edges { source target weight } } }"""
ATTR_SAVE = """query($m: String!, $p: String!) { attribute(model: $m, prompt: $p, maxNeurons: 20, save: true) { key } }"""
STEER = """query($m: String!, $p: String!, $n: ID!) { steer(model: $m, prompt: $p, maxNewTokens: 4,
  interventions: [{neuron: $n, scale: 10.0}]) { baseline steered promoted { token change } } }"""


async def test_worker_behind_the_api(store, settings, model):
    worker = WorkerProcess(settings, "tiny", socket_path=settings.data_dir / f"w-{settings.graph}.sock",
                           extra_args=["--queue", "0"])
    app = create_app(settings, store, web_dir=None, cache_entries=0, worker=worker)
    name = model.name
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                     base_url="http://t", timeout=120) as c:
            async def gql(q, v, client=c):
                return (await client.post("/graphql", json={"query": q, "variables": v})).json()

            t0 = time.monotonic()
            while worker.state != "up":
                assert time.monotonic() - t0 < 120
                await asyncio.sleep(0.2)
            r = await gql(RUN, {"m": name, "t": TEXT})
            assert "errors" not in r, r
            toks = r["data"]["runText"]["tokens"]
            assert toks[1]["token"] == "In" and len(toks[1]["top"]) == 3
            assert toks[1]["top"][0]["neuron"] is None  # this graph has no such model: nothing to traverse to
            r = await gql(ACTS, {"m": name, "t": TEXT, "n": [f"{name}/1/5"]})
            assert len(r["data"]["neuronActivations"]["neurons"][0]["activations"]) == len(toks)
            r = await gql(STEER, {"m": name, "p": TEXT, "n": f"{name}/1/5"})
            assert r["data"]["steer"]["promoted"]
            r = await gql(ATTR, {"m": name, "p": TEXT})
            g = r["data"]["attribute"]
            assert g["key"] is None and any(n["kind"] == "logit" for n in g["nodes"]) and g["edges"]
            # saving needs the model in the graph: this graph has none
            assert "no model" in (await gql(ATTR_SAVE, {"m": name, "p": TEXT}))["errors"][0]["message"]
            # the wrong model, a neuron out of range: clear errors
            assert "runs" in (await gql(RUN, {"m": "other", "t": TEXT}))["errors"][0]["message"]
            assert "no neuron" in (await gql(ACTS, {"m": name, "t": TEXT, "n": [f"{name}/9/0"]}))["errors"][0]["message"]
            # queue of 0: a second request while one computes is answered busy at once
            both = await asyncio.gather(gql(RUN, {"m": name, "t": TEXT * 8}), gql(RUN, {"m": name, "t": TEXT * 8}),
                                        gql(RUN, {"m": name, "t": TEXT * 8}))
            assert any("busy" in (x.get("errors") or [{}])[0].get("message", "") for x in both)
            # a client beyond loopback without the key may not run the model
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.9", 1)),
                                         base_url="http://t") as far:
                assert "x-api-key" in (await gql(RUN, {"m": name, "t": TEXT}, far))["errors"][0]["message"]

            # kill -9: everything else keeps serving, the worker is reported down, then back
            os.kill(worker.proc.pid, signal.SIGKILL)
            await asyncio.sleep(0.1)
            assert (await gql("{ models { name } }", {}))["data"] == {"models": []}
            msg = (await gql(RUN, {"m": name, "t": TEXT}))["errors"][0]["message"]
            assert "worker" in msg
            t0 = time.monotonic()
            while (await c.get("/healthz")).json()["servers"].get("model worker") != "up":
                assert time.monotonic() - t0 < 120
                await asyncio.sleep(0.2)
            assert "errors" not in await gql(RUN, {"m": name, "t": TEXT})
            assert worker.restarts == 1


async def test_without_a_worker_the_fields_say_how_to_start_one(store, settings):
    app = create_app(settings, store, web_dir=None, cache_entries=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                                 base_url="http://t") as c:
        r = (await c.post("/graphql", json={"query": RUN, "variables": {"m": "x", "t": TEXT}})).json()
    assert "neurograph serve --model" in r["errors"][0]["message"]
