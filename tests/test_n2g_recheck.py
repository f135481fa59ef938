"""Masking importance on a fast copy, rechecked in float32 where a decision could flip
(``N2GConfig.importance_recheck``): the same graphs as all-float32 masking, fewer float32 tokens."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from loaders.n2g import Example, LayerStats, N2GConfig, run_layer, run_model, run_neuron, token_substitutes

CFG = N2GConfig(n_substitutes=3, pivot_substitutes=6)


def same(got, ref) -> bool:
    """The same pattern graph and held-out scores; stored activations up to float32 rounding
    (batch shapes change it in the last bits)."""
    a, b = got.model.to_dict(), ref.model.to_dict()
    acts = [[n.pop("activation") for n in d["graph"]["nodes"]] for d in (a, b)]
    return (a == b and got.scores == ref.scores
            and all((x is None) == (y is None) and (x is None or x == pytest.approx(y, rel=1e-4)) for x, y in zip(*acts)))


@pytest.fixture(scope="module")
def tiny():
    from loaders.model import tiny_model

    return tiny_model(seed=3, n_layers=2, d_model=64, d_mlp=128)


@pytest.fixture(scope="module")
def setup(tiny):
    """(layer function, neuron examples, substitutes) of layer 1 of the tiny model."""
    from loaders.activations import neuron_activation_fn
    from loaders.n2g import embedding_neighbours

    fn = neuron_activation_fn(tiny, 1)
    rng = np.random.default_rng(0)
    windows = rng.integers(200, 5000, (64, 14)).tolist()
    acts = np.concatenate([np.asarray(fn(windows[s:s + 32])) for s in range(0, 64, 32)])
    examples = {}
    for i in (3, 17, 40, 77, 101):
        order = np.argsort(-acts[:, :, i].max(axis=1), kind="stable")[:8]
        examples[i] = [Example(windows[w], acts[w, :, i].tolist()) for w in order]
    subs = token_substitutes(embedding_neighbours(tiny.bridge.W_E.detach(), k=6))
    return fn, examples, subs


def perturbed(fn, eps: float):
    """``fn`` with every activation scaled by 1 + u, |u| <= eps, u fixed by the tokens up to the
    position: a fast copy whose masking importance errs by less than eps x |1 - importance|."""
    def fast(seqs):
        out = np.array(fn(seqs), dtype=float)
        for b, s in enumerate(seqs):
            for t in range(len(s)):
                u = np.random.default_rng(hash(tuple(s[: t + 1])) % 2**32).uniform(-eps, eps, out.shape[-1])
                out[b, t] *= 1 + u
        return out
    return fast


def with_fast(fn, fast):
    """``fn`` (packed token trees too) with ``fast`` answering the fast masking stage."""
    main = lambda seqs: fn(seqs)  # noqa: E731
    main.packed = fn.packed
    main.by_stage = {"importance_fast": fast}
    return main


def test_without_a_fast_copy_the_recheck_changes_nothing(setup):
    """The fast stage answered by the float32 function (no fast copy; the per-neuron driver
    answers every stage with its one function): the graphs of all-float32 masking."""
    fn, examples, subs = setup
    hybrid = dataclasses.replace(CFG, importance_recheck=0.1)
    ref = run_layer(fn, examples, pad_token=220, substitutes=subs, config=CFG)
    got = run_layer(fn, examples, pad_token=220, substitutes=subs, config=hybrid)
    i, exs = 17, examples[17]
    one = run_neuron(lambda s: np.asarray(fn(s))[:, :, i], exs, pad_token=220, substitutes=subs, config=hybrid)
    assert same(one, ref[i])
    for i in examples:
        assert same(got[i], ref[i]), i
    assert sum(len(r.model.nodes) for r in ref.values()) > len(examples)  # not trivially empty


def test_a_margin_covering_everything_is_all_float32(setup):
    """importance_recheck = inf reruns every masked row in float32: a fast copy that answers
    nonsense changes nothing."""
    fn, examples, subs = setup
    nonsense = lambda seqs: -3.0 * np.asarray(fn(seqs)) + 0.01  # noqa: E731
    ref = run_layer(fn, examples, pad_token=220, substitutes=subs, config=CFG)
    got = run_layer(with_fast(fn, nonsense), examples, pad_token=220, substitutes=subs,
                    config=dataclasses.replace(CFG, importance_recheck=math.inf))
    for i in examples:
        assert same(got[i], ref[i]), i
        assert got[i].trace.rechecked_rows == got[i].trace.masked_rows > 0


def test_fast_errors_inside_the_margin_keep_every_decision(setup):
    """A fast copy whose importance errs by less than the margin: the graphs of all-float32
    masking, with fewer float32 tokens (the stage accounting), though it does flip decisions
    that the recheck caught."""
    fn, examples, subs = setup
    margin = 0.2
    fast = perturbed(fn, margin)
    ref_stats, stats = LayerStats(), LayerStats()
    ref = run_layer(fn, examples, pad_token=220, substitutes=subs, config=CFG, stats=ref_stats)
    got = run_layer(with_fast(fn, fast), examples, pad_token=220, substitutes=subs,
                    config=dataclasses.replace(CFG, importance_recheck=margin), stats=stats)
    for i in examples:
        assert same(got[i], ref[i]), i
    assert stats.by_stage["importance"][1] < 0.8 * ref_stats.by_stage["importance"][1]
    assert stats.by_stage["importance_fast"][1] > 0 and "importance_fast" not in ref_stats.by_stage
    # the fast answers alone would have decided differently: rows whose decisions flipped, caught
    audit = [row for r in got.values() for row in r.trace.audit]
    assert any(wrong for _slack, _read, wrong in audit)
    assert all(slack <= margin for slack, _read, wrong in audit if wrong)
    rows = sum(r.trace.masked_rows for r in got.values())
    assert 0 < sum(r.trace.rechecked_rows for r in got.values()) < rows


def test_model_wide_hybrid_on_a_bfloat16_copy(tiny, setup):
    """run_model with a bfloat16 copy answering the fast stage (packed token trees, as the
    pipeline runs it): with a margin covering everything, the all-float32 graphs."""
    import torch

    from loaders.activations import model_activation_fn
    from loaders.model import tiny_model

    _fn, examples, subs = setup
    copy = tiny_model(seed=3, n_layers=2, d_model=64, d_mlp=128)
    copy.bridge.to(torch.bfloat16)
    main = model_activation_fn(tiny)
    keyed = {(1, i): exs for i, exs in examples.items()}
    ref = run_model(main, keyed, pad_token=220, substitutes=subs, config=CFG)
    main.by_stage = {"importance_fast": model_activation_fn(copy)}
    stats = LayerStats()
    got = run_model(main, keyed, pad_token=220, substitutes=subs,
                    config=dataclasses.replace(CFG, importance_recheck=math.inf), stats=stats)
    for key in keyed:
        assert same(got[key], ref[key]), key
    assert stats.by_stage["importance_fast"][1] > 0


def test_the_pipeline_runs_masking_on_its_fast_copy(tiny, setup):
    """The pipeline's layer functions with a bfloat16 copy answer the fast masking stage on it;
    with the pipeline's margin the fit reruns a minority of the float32 tokens and, on these
    neurons, decides as float32 masking does."""
    import torch

    from loaders.model import tiny_model
    from loaders.pipeline import IMPORTANCE_RECHECK, layer_fns

    _fn, examples, subs = setup
    copy = tiny_model(seed=3, n_layers=2, d_model=64, d_mlp=128)
    copy.bridge.to(torch.bfloat16)
    main = layer_fns(tiny)(1)
    mixed = layer_fns(tiny, fast=copy)(1)
    mixed.by_stage = {"importance_fast": mixed.by_stage["importance_fast"]}  # only masking on the copy
    ref_stats, stats = LayerStats(), LayerStats()
    ref = run_layer(main, examples, pad_token=220, substitutes=subs, config=CFG, stats=ref_stats)
    got = run_layer(mixed, examples, pad_token=220, substitutes=subs,
                    config=dataclasses.replace(CFG, importance_recheck=IMPORTANCE_RECHECK), stats=stats)
    for i in examples:
        assert same(got[i], ref[i]), i
    assert stats.by_stage["importance"][1] < 0.5 * ref_stats.by_stage["importance"][1]
