"""Neuron2Graph: hand-made neurons are recovered exactly; storage, similarity and token
search on a real FalkorDB."""

from __future__ import annotations

import random

import numpy as np
import pytest

from loaders.n2g import (
    WILDCARD,
    Example,
    N2GConfig,
    N2GModel,
    build_n2g,
    combined_substitutes,
    fit_n2g,
    importance_matrix,
    lm_substitutes,
    prune,
    run_neuron,
    similar_pairs,
    token_substitutes,
    _Acts,
)
from loaders.n2g_eval import TokenLookup, classification_scores
from neurograph.domain import ModelInfo, layer_key, neuron_key
from neurograph.errors import NotFound, QueryError
from neurograph.search import parse_query, search_tokens

PAD, A, B, C, D, E = 0, 1, 2, 3, 4, 5
FILLER = list(range(10, 30))
TEXT = {PAD: "<pad>", A: "A", B: " B", C: " C", D: " D", E: " E", **{t: f" w{t}" for t in FILLER}}
decode = TEXT.__getitem__


def context_neuron(act: int, ctx: set[int], back: int = 2, weak: float = 0.1):
    """Fires 1.0 on token ``act`` when the token ``back`` positions earlier is in ``ctx``;
    ``weak`` on ``act`` elsewhere, 0 on everything else."""
    def fn(seqs: list[list[int]]) -> list[list[float]]:
        return [[(1.0 if i >= back and s[i - back] in ctx else weak) if t == act else 0.0
                 for i, t in enumerate(s)] for s in seqs]
    return fn


def top_examples(fn, act: int, ctx: int, n: int = 20, length: int = 14, seed: int = 0) -> list[Example]:
    """n contexts, each with the pattern ``ctx ? act`` once and a stray ``act`` without it."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        toks = [rng.choice(FILLER) for _ in range(length)]
        p = rng.randrange(6, length)
        toks[p - 2], toks[p] = ctx, act
        stray = rng.choice([i for i in range(2, length) if abs(i - p) > 2])
        toks[stray] = act
        acts = fn([toks])[0]
        out.append(Example(toks, acts))
    return out


# --- the algorithm --------------------------------------------------------------------
def test_prune_keeps_the_shortest_context_that_still_fires():
    fn = context_neuron(B, {A})
    ex = Example([11, 12, 13, A, 14, B, 15], fn([[11, 12, 13, A, 14, B, 15]])[0])
    assert ex.pivot == 5
    tokens, full, pruned = prune(_Acts(fn, 8), ex, N2GConfig(prune_step=1))
    assert tokens == [A, 14, B] and full == pruned == 1.0
    # by default every 5th length and the whole prior are tried, as the reference code does
    assert prune(_Acts(fn, 8), ex, N2GConfig())[0] == [12, 13, A, 14, B]
    assert prune(_Acts(fn, 8), Example([A, 14, B], [0, 0, 1.0]), N2GConfig())[0] == [A, 14, B]


def test_prune_needs_the_pivot_to_stay_the_strongest_token():
    # B: 1.0 with A two back, 0.6 right after C, else 0.3; C is always 0.9. The context
    # [C, B] keeps 60% of B's activation, but C outshines B there: the reference code
    # rejects it and goes on to [A, C, B].
    def fn(seqs):
        return [[(1.0 if i >= 2 and s[i - 2] == A else 0.6 if i >= 1 and s[i - 1] == C else 0.3) if t == B
                 else 0.9 if t == C else 0.0 for i, t in enumerate(s)] for s in seqs]
    ex = Example([11, A, C, B], fn([[11, A, C, B]])[0])
    tokens, full, pruned = prune(_Acts(fn, 8), ex, N2GConfig(prune_step=1))
    assert tokens == [A, C, B] and full == pruned == 1.0


def test_post_context_gives_lines_to_tokens_after_the_pivot():
    # B fires 1.0 after A; the token right after B fires 0.8 (weaker, so never the pivot).
    # The reference keeps up to 5 tokens after the pivot, within its sentence.
    def fn(seqs):
        return [[(1.0 if i >= 1 and s[i - 1] == A else 0.0) if t == B
                 else 0.8 if t == C and i >= 1 and s[i - 1] == B else 0.0 for i, t in enumerate(s)] for s in seqs]
    train = [Example(t, fn([t])[0]) for t in ([11, A, B, C, 12], [13, 14, A, B, C])]
    max_only = N2GConfig(pivot_threshold=1.0)
    m = fit_n2g(fn, train, pad_token=PAD, config=max_only)
    assert m.predict([15, A, B, C]).tolist() == [0, 0, 1.0, 0.8]
    assert m.predict([15, 16, B, C]).tolist() == [0, 0, 0, 0.8]   # C's line needs B, not A
    no_post = N2GConfig(pivot_threshold=1.0, post_context=0)
    assert fit_n2g(fn, train, pad_token=PAD, config=no_post).predict([A, B, C]).tolist() == [0, 1.0, 0]
    # a sentence end between the pivot and C stops the post-context before C
    cut = [Example(t, fn([t])[0]) for t in ([11, A, B, E, C], [A, B, E, C])]
    m = fit_n2g(fn, cut, pad_token=PAD, sentence_end=lambda t: t == E, config=max_only)
    assert m.predict([A, B, C]).tolist() == [0, 1.0, 0]
    # by default C (0.8 >= 0.5 x its example's max) is a pivot of its own: it gets its line
    # without the post-context too
    m = fit_n2g(fn, train, pad_token=PAD, config=N2GConfig(post_context=0))
    assert m.predict([15, 16, B, C]).tolist() == [0, 0, 0, 0.8]


def test_only_the_pivot_is_rescaled_to_its_full_context_activation():
    # B fires 1.0 with A three back, 0.5 right after C, else 0.2; C fires 0.45. Pruning stops
    # at [C, B] (0.5 >= 50% of 1.0) and B's line is scaled back up to 1.0. C keeps its own
    # 0.45 (no line); the reference code scales it by B's ratio too, to a firing 0.9.
    def fn(seqs):
        return [[(1.0 if i >= 3 and s[i - 3] == A else 0.5 if i >= 1 and s[i - 1] == C else 0.2) if t == B
                 else 0.45 if t == C else 0.0 for i, t in enumerate(s)] for s in seqs]
    train = [Example([A, 11, C, B], fn([[A, 11, C, B]])[0])]
    m = fit_n2g(fn, train, pad_token=PAD, config=N2GConfig(prune_step=1))
    assert m.predict([12, 13, C, B]).tolist() == [0, 0, 0, 1.0]
    ref = fit_n2g(fn, train, pad_token=PAD, config=N2GConfig(prune_step=1, scale_context=True))
    assert ref.predict([12, 13, C, B]).tolist() == [0, 0, 0.9, 1.0]


def test_importance_is_one_minus_masked_over_unmasked():
    fn = context_neuron(B, {A}, weak=0.25)
    acts, imp = importance_matrix(_Acts(fn, 8), [A, 14, B], PAD)
    assert acts.tolist() == [0.0, 0.0, 1.0]
    # masking A drops B from 1.0 to 0.25; masking the filler changes nothing; masking B kills it
    assert imp[:, 2].tolist() == pytest.approx([0.75, 0.0, 1.0])


def test_context_neuron_is_recovered_exactly():
    fn = context_neuron(B, {A})
    exs = top_examples(fn, B, A)
    r = run_neuron(fn, exs, pad_token=PAD)
    assert len(r.train) == len(r.test) == 10 and not set(r.train) & set(r.test)
    # the trie: B (activating) <- wildcard <- A (important, stores the activation)
    (b,) = r.model.root.children.values()
    assert (b.key, b.role, b.end) == (B, "activating", None)
    (w,) = b.children.values()
    assert w.key is WILDCARD and w.role == "ignore"
    (a,) = w.children.values()
    assert (a.key, a.role, a.end, a.children) == (A, "important", 1.0, {})
    assert r.model.token_sets() == {"activating": {B}, "important": {A}}
    assert r.scores["firing"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "count": 10}
    assert r.scores["non_firing"]["f1"] == 1.0
    # token lookup fires on every B, also the stray ones: worse precision and F1; both are
    # scored on the same held-out tokens
    assert r.baseline["firing"]["count"] == r.scores["firing"]["count"]
    assert r.baseline["non_firing"]["count"] == r.scores["non_firing"]["count"]
    assert r.baseline["firing"]["recall"] == 1.0
    assert r.baseline["firing"]["precision"] == pytest.approx(0.5)
    assert r.baseline["firing"]["f1"] < r.scores["firing"]["f1"]
    assert r.model.predict([A, 11, B, 12, B, A, B]).tolist() == [0, 0, 1, 0, 0, 0, 0]


def test_augmentation_adds_substitutes_that_keep_the_activation():
    fn = context_neuron(B, {A, C})  # C works like A, D does not
    train = top_examples(fn, B, A, n=5)
    subs = {A: [C, D], B: [D]}
    plain = fit_n2g(fn, train, pad_token=PAD)
    aug = fit_n2g(fn, train, pad_token=PAD, substitutes=token_substitutes(lambda t: subs.get(t, [])))
    assert plain.predict([C, 11, B]).tolist() == [0, 0, 0]
    assert aug.predict([C, 11, B]).tolist() == [0, 0, 1.0]
    assert aug.predict([D, 11, B]).tolist() == [0, 0, 0]
    assert aug.token_sets() == {"activating": {B}, "important": {A, C}}


def test_more_substitutes_at_the_pivot_find_new_activating_tokens():
    # fires on B or E two tokens after A
    def fn(seqs):
        return [[float(t in (B, E) and i >= 2 and s[i - 2] == A) for i, t in enumerate(s)] for s in seqs]
    train = top_examples(fn, B, A, n=5)
    subs = token_substitutes({B: [D, E], A: [C]}.get)
    few = fit_n2g(fn, train, pad_token=PAD, substitutes=subs, config=N2GConfig(n_substitutes=1))
    more = fit_n2g(fn, train, pad_token=PAD, substitutes=subs, config=N2GConfig(n_substitutes=1, pivot_substitutes=2))
    assert few.token_sets()["activating"] == {B}
    assert more.token_sets() == {"activating": {B, E}, "important": {A}}
    assert more.predict([A, 11, E]).tolist() == [0, 0, 1.0] and more.predict([C, 11, E]).tolist() == [0, 0, 0]


def bigram_lm(follows: dict[int, list[int]], vocab: int = 30):
    """A toy next-token predictor: after token t it ranks ``follows[t]`` first, in order, then
    every other token by id. Returns (logits_fn, calls), calls recording each batch it ran."""
    calls: list[list[list[int]]] = []

    def logits(seqs: list[list[int]]) -> np.ndarray:
        calls.append([list(s) for s in seqs])
        out = np.zeros((len(seqs), len(seqs[0]), vocab))
        for b, s in enumerate(seqs):
            for i, t in enumerate(s):
                out[b, i] = -np.arange(vocab) / vocab
                for rank, f in enumerate(follows.get(t, [])):
                    out[b, i, f] = 10.0 - rank
        return out

    return logits, calls


def test_lm_substitutes_are_the_models_top_k_at_the_position():
    logits, calls = bigram_lm({11: [A, C, D], 12: [E, A, B]})
    subs = lm_substitutes(logits, k=2, exclude={PAD})
    # The prediction at a position comes from the token before it: after 11 the LM expects A,
    # C, D; the original token (A) is left out. The same token after 12 gets other candidates.
    assert subs([[11, A, 12, A]], [[1, 3]]) == [[[C, D], [E, B]]]
    # Excluded (special) tokens are never proposed; the ranking goes on past them.
    assert lm_substitutes(logits, k=2, exclude={E, PAD})([[12, B]], [[1]]) == [[[A, C]]]
    # Position 0 has no left context: nothing, or the fallback's candidates; with a prefix
    # (a document start, as the activations see it) the LM predicts after the prefix.
    assert subs([[B, 11]], [[0]]) == [[[]]]
    assert lm_substitutes(logits, k=2, fallback={B: [D]}.get)([[B]], [[0]]) == [[[D]]]
    assert lm_substitutes(logits, k=2, prefix=[12])([[E]], [[0]]) == [[[A, B]]]
    # Batched: one forward pass per prompt serves all its positions, cut after the last asked.
    calls.clear()
    lm_substitutes(logits, k=2, batch_size=8)([[11, A, 12, A, 13], [12, B]], [[1, 3], [1]])
    assert len(calls) == 1 and sorted(map(tuple, calls[0])) == [(11, A, 12), (12, PAD, PAD)]


def test_lm_substitutes_ranked_by_embedding_similarity():
    logits, _ = bigram_lm({11: [D, E, C, B]})
    W = np.zeros((30, 2))
    W[:, 0] = 1.0
    W[A] = W[C] = [0.0, 1.0]  # C looks like A; D, E, B do not
    plain = lm_substitutes(logits, k=1)
    near = lm_substitutes(logits, k=1, embeddings=W, pool=4)
    assert plain([[11, A]], [[1]]) == [[[D]]]
    assert near([[11, A]], [[1]]) == [[[C]]]
    # a pool the size of k is the plain ranking
    assert lm_substitutes(logits, k=1, embeddings=W, pool=1)([[11, A]], [[1]]) == [[[D]]]
    both = combined_substitutes(near, token_substitutes({A: [E, C]}.get))
    assert both([[11, A]], [[1]]) == [[[C, E]]]


def test_augmentation_with_the_lm_finds_context_that_works_alike():
    fn = context_neuron(B, {A, C})  # C works like A, D does not
    train = top_examples(fn, B, A, n=5)
    # Whatever precedes A, the LM expects D first, then C: both are tried, only C is kept.
    logits, calls = bigram_lm({t: [D, C] for t in FILLER})
    plain = fit_n2g(fn, train, pad_token=PAD)
    aug = fit_n2g(fn, train, pad_token=PAD, substitutes=lm_substitutes(logits, k=2, exclude={PAD}))
    assert plain.predict([C, 11, B]).tolist() == [0, 0, 0]
    assert aug.predict([C, 11, B]).tolist() == [0, 0, 1.0]
    assert aug.predict([D, 11, B]).tolist() == [0, 0, 0]
    assert aug.token_sets() == {"activating": {B}, "important": {A, C}}
    assert len(calls) == 1  # one batch for all the training prompts


def test_context_neuron_is_still_recovered_exactly_with_lm_substitutes():
    fn = context_neuron(B, {A})
    logits, _ = bigram_lm({t: [A, C, D, E] for t in FILLER + [A, B]})
    subs = lm_substitutes(logits, k=3, exclude={PAD}, embeddings=np.eye(30), pool=6)
    r = run_neuron(fn, top_examples(fn, B, A), pad_token=PAD, substitutes=subs)
    assert r.model.token_sets() == {"activating": {B}, "important": {A}}
    assert r.scores["firing"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "count": 10}
    assert r.baseline["firing"]["f1"] < r.scores["firing"]["f1"]


def test_prediction_is_the_max_over_matching_paths():
    # strong on B after A two back; weaker (0.6) on B after E one back
    def fn(seqs):
        return [[(1.0 if i >= 2 and s[i - 2] == A else 0.6 if i >= 1 and s[i - 1] == E else 0.0) if t == B else 0.0
                 for i, t in enumerate(s)] for s in seqs]
    train = [Example(t, fn([t])[0]) for t in ([11, A, 12, B], [13, 14, E, B], [A, 15, B])]
    m = fit_n2g(fn, train, pad_token=PAD)
    assert m.predict([A, E, B]).tolist() == [0, 0, 1.0]   # both paths match: the max
    assert m.predict([12, E, B]).tolist() == [0, 0, 0.6]
    assert m.predict([12, 13, B]).tolist() == [0, 0, 0]


def test_context_beside_a_wildcard_generalises_to_it():
    # reference merge_ignores: "B <- 12 <- A" next to "B <- * <- C" becomes "B <- * <- {A, C}";
    # "B <- 12" alone also ends a line, so it stays
    m = N2GModel()
    m.add_line([(B, True), (12, True), (A, True)], [B, 12, A], 0.9)
    m.add_line([(B, True), (WILDCARD, False), (C, True)], [B, 11, C], 0.7)
    m.add_line([(B, True), (13, True)], [B, 13], 0.6)
    m.add_line([(B, True), (13, True), (D, True)], [B, 13, D], 0.8)
    assert m.predict([A, 14, B]).tolist() == [0, 0, 0]
    m.merge_ignores()
    assert m.predict([A, 14, B]).tolist() == [0, 0, 0.9]
    assert m.predict([D, 14, B]).tolist() == [0, 0, 0.8]
    assert m.predict([14, 13, B]).tolist() == [0, 0, 0.6]
    assert m.predict([14, 12, B]).tolist() == [0, 0, 0]   # "12" alone ended no line: dropped
    # the node list is what is left, numbered parents first
    reachable, stack = [], list(m.root.children.values())
    while stack:
        n = stack.pop()
        reachable.append(n)
        stack.extend(n.children.values())
    assert sorted(n.id for n in m.nodes) == list(range(len(m.nodes))) == sorted(n.id for n in reachable)
    assert all(a < b for a, b in m.edges())


def test_normalise_merges_token_variants():
    fn = context_neuron(B, {A, E})
    train = top_examples(fn, B, A, n=4)
    m = fit_n2g(fn, train, pad_token=PAD, normalise=lambda t: A if t == E else t)
    assert m.predict([E, 11, B]).tolist() == [0, 0, 1.0]


def test_scores_and_baseline_definitions():
    s = classification_scores([1.0, 0.0, 0.9, 0.1, 0.0], [0.8, 0.7, 0.0, 0.0, 0.0])
    assert s["firing"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "count": 2}
    assert s["non_firing"]["precision"] == pytest.approx(2 / 3)
    assert s["non_firing"]["recall"] == pytest.approx(2 / 3)
    # predicting nothing as firing is perfect precision (the papers' convention)
    assert classification_scores([1.0, 0.0], [0.0, 0.0])["firing"]["precision"] == 1.0
    assert classification_scores([0.0], [0.0])["firing"]["f1"] is None
    lookup = TokenLookup.fit([([B, A], [0.9, 0.1]), ([B], [0.4])])
    assert lookup.predict([A, B, C]).tolist() == [0.1, 0.9, 0.0]


def test_similar_pairs_are_symmetric_jaccard():
    sets = {"m/0/0": {"activating": {B}, "important": {A}},
            "m/0/1": {"activating": {B}, "important": {C}},
            "m/1/0": {"activating": {A}, "important": {B}},
            "m/1/1": {"activating": {B}, "important": {A}}}
    rows = similar_pairs(sets, threshold=0.3)
    assert rows == [{"src": "m/0/0", "dst": "m/0/1", "weight": pytest.approx(1 / 3)},
                    {"src": "m/0/0", "dst": "m/1/1", "weight": 1.0},
                    {"src": "m/0/1", "dst": "m/1/1", "weight": pytest.approx(1 / 3)}]
    flipped = similar_pairs({k: sets[k] for k in reversed(list(sets))}, threshold=0.3)
    assert flipped == rows


# --- storage and search on FalkorDB ---------------------------------------------------
NEURONS = {  # (layer, index) -> (activating token, context token)
    (0, 0): (B, A), (0, 1): (B, C), (1, 0): (A, B), (1, 1): (B, A),
}


async def _model(store, model: str = "toy") -> None:
    await store.write("upsert_models", [ModelInfo(model, 2, 2).row()])
    await store.write("upsert_layers", [{"key": layer_key(model, l), "model": model, "layer": l, "n_neurons": 2}
                                        for l in range(2)])
    await store.write("upsert_neurons", [{"key": neuron_key(model, l, i), "model": model, "layer": l, "index": i,
                                          "layer_key": layer_key(model, l), "props": {}} for l, i in NEURONS])


def _fns():
    return {k: context_neuron(act, {ctx}) for k, (act, ctx) in NEURONS.items()}


async def _build(store, **kw):
    fns = _fns()
    examples = {k: top_examples(fns[k], *NEURONS[k], seed=k[0] * 10 + k[1]) for k in NEURONS}
    return await build_n2g(store, "toy", lambda l, i: fns[(l, i)], pad_token=PAD, examples=examples,
                           decode=decode, similar_threshold=0.3, progress=False, **kw)


async def test_build_stores_patterns_scores_and_similar(store):
    await _model(store)
    summary = await _build(store)
    assert summary == {"done": 4, "skipped": 0, "failed": [], "similar": 3}
    rows = await store.run(
        "MATCH (n:Neuron {key: 'toy/0/0'})-[:HAS_PATTERN]->(p:PatternNode) "
        "OPTIONAL MATCH (p)-[m:MATCHES]->(t:Token) RETURN p.role AS role, p.depth AS depth, p.token AS token, "
        "p.activation AS activation, m.role AS mrole, t.id AS tid ORDER BY depth")
    assert [(r["role"], r["depth"], r["token"], r["mrole"], r["tid"]) for r in rows] == [
        ("activating", 0, " B", "activating", B), ("ignore", 1, None, None, None), ("important", 2, "A", "important", A)]
    assert rows[2]["activation"] == 1.0
    nexts = await store.run("MATCH (:Neuron {key: 'toy/0/0'})-[:HAS_PATTERN]->(a)-[:PATTERN_NEXT]->(b) "
                            "RETURN a.depth AS a, b.depth AS b ORDER BY a")
    assert nexts == [{"a": 0, "b": 1}, {"a": 1, "b": 2}]
    (props,) = await store.run("MATCH (n:Neuron {key: 'toy/0/0'}) RETURN properties(n) AS p")
    p = props["p"]
    assert p["n2g_firing_f1"] == 1.0 and p["baseline_firing_f1"] < 1.0 and p["n2g_nodes"] == 3
    assert p["n2g_dot"].startswith("digraph") and '"A"' in p["n2g_dot"]
    sim = await store.run("MATCH (a:Neuron)-[e:SIMILAR {kind: 'n2g'}]->(b:Neuron) "
                          "RETURN a.key AS a, b.key AS b, e.weight AS w ORDER BY a, b")
    assert [(r["a"], r["b"], round(r["w"], 3)) for r in sim] == [
        ("toy/0/0", "toy/0/1", 0.333), ("toy/0/0", "toy/1/1", 1.0), ("toy/0/1", "toy/1/1", 0.333)]


async def test_build_resumes_and_force_rebuilds_idempotently(store):
    await _model(store)
    await _build(store)
    count = "MATCH (p:PatternNode) RETURN count(p) AS n"
    (before,) = await store.run(count)
    assert (await _build(store))["skipped"] == 4
    assert (await _build(store, force=True))["done"] == 4
    assert await store.run(count) == [before]
    edges = await store.run("MATCH ()-[e:SIMILAR]->() RETURN count(e) AS n")
    assert edges == [{"n": 3}]


async def test_build_refuses_unknown_neurons_and_writes_nothing(store):
    await _model(store)
    fn = context_neuron(B, {A})
    with pytest.raises(NotFound, match="toy/5/0"):
        await build_n2g(store, "toy", lambda l, i: fn, pad_token=PAD, examples={(5, 0): top_examples(fn, B, A)},
                        progress=False)
    assert await store.run("MATCH (p:PatternNode) RETURN count(p) AS n") == [{"n": 0}]


async def _store_examples(store, neuron: str, exs: list[Example]) -> None:
    tag = neuron.replace("/", "_")
    await store.write("upsert_examples", [{"key": f"{tag}/x{i}", "model": "toy", "tokens": e.tokens, "data_index": i,
                                           "source": "test"} for i, e in enumerate(exs)])
    await store.write("upsert_activations", [{
        "neuron": neuron, "example": f"{tag}/x{i}", "kind": "max", "rank": i, "activations": e.activations,
        "max_activation": max(e.activations), "min_activation": min(e.activations), "pivot": e.pivot}
        for i, e in enumerate(exs)])


def test_examples_from_rows_reads_tokens_from_the_rows_or_once_per_example():
    from loaders.n2g import examples_from_rows

    acts = [0.0, 1.0]
    rows = [{"layer": 0, "index": 0, "token_ids": [1, 2], "activations": acts},
            {"layer": 0, "index": 1, "tokens": [3, 4], "activations": acts}]  # no example keys: each row its own
    assert {k: [e.tokens for e in v] for k, v in examples_from_rows(rows).items()} == {(0, 0): [[1, 2]], (0, 1): [[3, 4]]}
    rows = [{"layer": 0, "index": i, "example": "x", "activations": acts, "pivot": 1} for i in range(2)]
    got = examples_from_rows(rows, {"x": {"token_ids": [5, 6], "tokens": ["a", "b"]}})
    assert [got[(0, i)][0].tokens for i in range(2)] == [[5, 6], [5, 6]]
    with pytest.raises(ValueError, match="token strings"):
        examples_from_rows(rows, {"x": {"token_ids": None, "tokens": ["a", "b"]}})


async def test_build_reads_top_examples_from_the_store(store):
    await _model(store)
    fn = context_neuron(B, {A})
    await _store_examples(store, "toy/0/0", top_examples(fn, B, A))
    summary = await build_n2g(store, "toy", lambda l, i: fn, pad_token=PAD, decode=decode, progress=False)
    assert summary["done"] == 1  # the other neurons have no examples: nothing to fit
    assert (await store.run("MATCH (n:Neuron {key: 'toy/0/0'}) RETURN n.n2g_firing_f1 AS f1")) == [{"f1": 1.0}]


class _Reads:
    """The real store, noting which of its examples each query read."""

    def __init__(self, store):
        self.store, self.read = store, []

    async def query(self, name, **params):
        rows = await self.store.query(name, **params)
        self.read += [(r["layer"], r["index"]) for r in rows if "example" in r and "layer" in r]
        return rows

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_build_matches_exact_tokens_unless_told_to_fold_case_and_spaces(store):
    # The neuron fires on " w10" only; "w10" reads the same once folded as the reference code
    # folds tokens, but the neuron ignores it.
    from loaders.n2g import text_normaliser

    await _model(store)
    texts = {**TEXT, 40: "w10"}
    fn = lambda seqs: [[float(t == 10) for t in s] for s in seqs]  # noqa: E731
    rng = random.Random(1)
    toks = [[rng.choice(FILLER[1:]) for _ in range(10)] + [10, 40] for _ in range(20)]
    for t in toks:
        rng.shuffle(t)
    examples = {(0, 0): [Example(t, fn([t])[0]) for t in toks]}
    kw = dict(pad_token=PAD, examples=examples, decode=texts.__getitem__, force=True, similar_threshold=None,
              progress=False)
    get = "MATCH (n:Neuron {key: 'toy/0/0'}) RETURN n.n2g_firing_precision AS p"
    await build_n2g(store, "toy", lambda l, i: fn, **kw)
    assert await store.run(get) == [{"p": 1.0}]
    await build_n2g(store, "toy", lambda l, i: fn, normalise=text_normaliser(texts.__getitem__), **kw)
    assert (await store.run(get))[0]["p"] == 0.5


async def test_build_reads_only_the_requested_neurons_examples(store):
    await _model(store)
    fns = _fns()
    for k in NEURONS:
        await _store_examples(store, neuron_key("toy", *k), top_examples(fns[k], *NEURONS[k]))
    reads = _Reads(store)
    summary = await build_n2g(reads, "toy", lambda l, i: fns[(l, i)], pad_token=PAD, decode=decode,
                              neurons=[(1, 0)], similar_threshold=None, progress=False)
    assert summary["done"] == 1 and set(reads.read) == {(1, 0)}
    fitted = await store.run("MATCH (n:Neuron) WHERE n.n2g_firing_f1 IS NOT NULL RETURN n.key AS k")
    assert fitted == [{"k": "toy/1/0"}]
    # A finished neuron is skipped without reading its examples again.
    reads.read = []
    summary = await build_n2g(reads, "toy", lambda l, i: fns[(l, i)], pad_token=PAD, decode=decode,
                              layers=[1], similar_threshold=None, progress=False)
    assert (summary["done"], summary["skipped"]) == (1, 1) and set(reads.read) == {(1, 1)}


async def test_search_tokens_roles_and_and_semantics(store):
    await _model(store)
    await _build(store)

    async def keys(**kw):
        return [r["key"] for r in await search_tokens(store, "toy", **kw)]

    assert await keys(activating=["b"]) == ["toy/0/0", "toy/0/1", "toy/1/1"]
    assert await keys(important=["A"]) == ["toy/0/0", "toy/1/1"]
    assert await keys(activating=["B"], important=["a"]) == ["toy/0/0", "toy/1/1"]
    assert await keys(activating=["b"], important=["c"]) == ["toy/0/1"]
    assert await keys(activating=["a"]) == ["toy/1/0"]
    assert await keys(any_=["a"]) == ["toy/0/0", "toy/1/0", "toy/1/1"]
    assert await keys(any_=["a", " C "]) == []
    assert await keys(any_=["b", "c"]) == ["toy/0/1"]
    assert await keys(activating=["b"], important=["zzz"]) == []
    assert await keys(activating=["b"], limit=1, offset=1) == ["toy/0/1"]
    rows = await search_tokens(store, "toy", activating=["b"])
    assert [(r["layer"], r["index"]) for r in rows] == [(0, 0), (0, 1), (1, 1)]
    assert all(r["score"] == 1.0 for r in rows)
    # order by score: lower the F1 of one neuron and it comes last
    await store.write("set_neuron_props", [{"key": "toy/0/0", "props": {"n2g_firing_f1": 0.5}}])
    assert await keys(activating=["b"], order="score") == ["toy/0/1", "toy/1/1", "toy/0/0"]
    # With its spaces (GraphQL's searchTokens), " b" is the token " B" and "b" is not.
    assert await keys(activating=[" b"], keep_spaces=True) == ["toy/0/0", "toy/0/1", "toy/1/1"]
    assert await keys(activating=["b"], keep_spaces=True) == []
    assert await keys(important=["a"], keep_spaces=True) == ["toy/0/0", "toy/1/1"]  # "A" has no space
    with pytest.raises(QueryError):
        await search_tokens(store, "toy")
    with pytest.raises(QueryError):
        await search_tokens(store, "toy", activating=["b"], order="random")


def test_parse_query():
    assert parse_query("activating:Paris,important:capital,any:of") == {
        "activating": ["Paris"], "important": ["capital"], "any_": ["of"]}
    with pytest.raises(QueryError):
        parse_query("nonsense")


def test_text_normaliser_and_embedding_neighbours():
    from loaders.n2g import embedding_neighbours, text_normaliser

    texts = {0: " The", 1: "the", 2: "THE", 3: " ,", 4: " cat"}
    norm = text_normaliser(texts.__getitem__)
    assert [norm(i) for i in range(5)] == ["the", "the", "THE", " ,", "cat"]
    W = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 0.2], [0.0, 0.0, 1.0]])
    subs = embedding_neighbours(W, k=2, exclude={1})
    assert subs(0) == [3, 2] or subs(0) == [3, 4]
    assert 1 not in subs(0) and 0 not in subs(0)
    # The nearest tokens of " The" are "the" (same word) then " ,": with distinct words, the
    # variant is passed over for the next different words.
    assert embedding_neighbours(W, k=2)(0) == [1, 3]
    words = embedding_neighbours(W, k=2, distinct=norm)(0)
    assert words[0] == 3 and words[1] in (2, 4) and len({norm(t) for t in words} | {norm(0)}) == 3
    # variants: the nearest tokens of the same word first, then the different words
    assert embedding_neighbours(W, k=1, distinct=norm, variants=2)(0) == [1, 3]


def test_graph_serialisations():
    fn = context_neuron(B, {A})
    m = fit_n2g(fn, top_examples(fn, B, A, n=3), pad_token=PAD)
    d = m.to_dict(decode)["graph"]
    assert [(n["token"], n["role"], n["is_end"]) for n in d["nodes"]] == [
        (" B", "activating", False), (None, "ignore", False), ("A", "important", True)]
    assert d["edges"] == [[0, 1], [1, 2]]
    dot = m.to_dot(decode)
    # wildcards are dropped from the drawing: A links to B with a dashed edge
    assert "n1 -> n0 [style=dashed];" in dot and dot.count("label=") == 2


def test_similar_pairs_prefix_filtering_is_exact_and_caps_each_neuron():
    rng = random.Random(1)

    def naive(sets, t):
        tagged = {k: {(r, x) for r, xs in v.items() for x in xs} for k, v in sets.items()}
        ks = sorted(tagged)
        return [(a, b) for i, a in enumerate(ks) for b in ks[i + 1:]
                if (n := len(tagged[a] & tagged[b])) and n / (len(tagged[a]) + len(tagged[b]) - n) >= t]

    for _ in range(10):
        sets = {f"m/0/{i}": {"activating": set(rng.sample(range(6), rng.randint(0, 3))),
                             "important": set(rng.sample(range(10), rng.randint(0, 5)))} for i in range(40)}
        for t in (0.2, 0.5, 0.9):
            assert [(r["src"], r["dst"]) for r in similar_pairs(sets, t, max_per_neuron=None)] == naive(sets, t)
    # 30 identical graphs: 435 pairs, each neuron keeps its strongest few
    same = {f"m/1/{i}": {"activating": {1}, "important": {2}} for i in range(30)}
    assert len(similar_pairs(same, 0.5, max_per_neuron=None)) == 435
    capped = similar_pairs(same, 0.5, max_per_neuron=3)
    assert len(capped) < 435 and all(r["weight"] == 1.0 for r in capped)


def test_lm_substitutes_at_asked_positions_equal_the_full_logits():
    # the toy LM of the doctest, with an .at that computes only the asked rows
    full = lambda seqs: np.array([[[-((v - t - 1) % 5) for v in range(5)] for t in s] for s in seqs])  # noqa: E731
    calls = []

    def lm(seqs):
        return full(seqs)

    def at(seqs, positions):
        calls.append(positions)
        return np.concatenate([full([s])[0][ps] for s, ps in zip(seqs, positions)])

    lm.at = at
    prompts, asked = [[0, 1, 4, 2], [3, 3], [0, 1, 4]], [[1, 3], [1], [2]]
    assert lm_substitutes(lm, k=2)(prompts, asked) == lm_substitutes(full, k=2)(prompts, asked)
    # one call: [3] at 0, and [0, 1, 4] at 0 and 2 for the first prompt and at 1 for the third,
    # whose [0, 1] runs inside it
    assert calls == [[[0], [0, 1, 2]]]
