"""Fitting one neuron's N2G trie: split, prune, masking importance, substitution, lines.

Every stage asks for activations (and substitutes) through *requests* that a driver answers:
:func:`fit_n2g` / :func:`run_neuron` answer them for one neuron with its own activation
function; :func:`loaders.n2g.batched.run_layer` answers the requests of many neurons of one
layer with shared forward passes. The method is the same code either way.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Hashable, Sequence

import numpy as np

from ..n2g_eval import FIRE_THRESHOLD, TokenLookup, classification_scores, flat_scores
from .trie import WILDCARD, N2GModel

ActivationFn = Callable[[list[list[int]]], np.ndarray]
"""Token-id sequences -> one neuron's activation per position: an array [B, T] (right-padded,
as a causal model's positions do not see the padding) or a list of per-sequence arrays."""

SubstituteFn = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]]], list[list[list[int]]]]
"""(prompts, positions asked per prompt) -> candidate token ids for each asked position of each
prompt, best first. One call per fit, with every prompt of the neuron: a context-aware source
(:func:`lm_substitutes`) runs each prompt once for all its positions."""

@dataclass
class Example:
    """One top-activating context of a neuron: token ids, the neuron's activation per token
    and the pivot (max-activation) position.

        >>> Example([5, 6, 7], [0.0, 2.5, 0.1]).pivot
        1
    """

    tokens: list[int]
    activations: list[float]
    pivot: int | None = None

    def __post_init__(self) -> None:
        # A list of ints is kept as given, not copied: the neurons that peak on one context share
        # its token list (the demo's 460k top examples of 256 contexts, as a sweep worker reads
        # them: 1,533 -> 1,353 MB, bench_sweep_memory). Nothing changes an example's tokens in place.
        if not (type(self.tokens) is list and all(type(t) is int for t in self.tokens)):
            self.tokens = [int(t) for t in self.tokens]
        self.activations = [float(a) for a in self.activations]
        if len(self.tokens) != len(self.activations):
            raise ValueError(f"example has {len(self.tokens)} tokens but {len(self.activations)} activations")
        if self.pivot is None:
            self.pivot = int(np.argmax(self.activations)) if self.activations else 0


@dataclass(frozen=True)
class N2GConfig:
    """Thresholds of the workshop paper and the knobs that bound the cost per neuron.

        >>> N2GConfig().importance_threshold
        0.75
    """

    prune_threshold: float = 0.5       # pruned context keeps >= this x pivot activation
    pivot_threshold: float = 0.5       # also fit tokens at >= this x the example's max (1: max only)
    max_pivots: int = 4                # pivots per example at most
    augment_threshold: float = 0.5     # a substitution is kept if it keeps >= this x
    activation_threshold: float = 0.5  # normalised activation that starts a trie line
    importance_threshold: float = 0.75
    fire_threshold: float = FIRE_THRESHOLD
    max_context: int = 30              # longest prior context tried when pruning (paper: 30)
    post_context: int = 5              # tokens after the pivot kept, up to its sentence's end (reference: 5)
    scale_context: bool = False        # also rescale the pivot's context tokens by its ratio (reference)
    prune_step: int = 5                # context lengths tried: every prune_step-th (reference: 5)
    merge_ignores: bool = True         # generalise context next to wildcards (reference)
    prune_chunk: int = 1               # lengths per pivot and activation call while pruning (1: a
                                       # longer context only runs if the shorter failed; cheapest)
    n_substitutes: int = 5             # substitutes tried per important context token
    pivot_substitutes: int | None = None  # substitutes tried at the pivot (None: n_substitutes); they
                                       # give new activating tokens, the lookup's blind spot
    max_augment_positions: int = 6     # important positions substituted per example
    # Recompute masking importance on each kept variant (reference code); it costs about as much
    # as the rest of the fit and did not change held-out F1 (.60 with, .61 without, 28 neurons).
    reimportance_augmented: bool = False
    # The full-context pivot activation that pruning keeps a share of is the example's own (the
    # harvest measured it on the same tokens); True runs the full prior again, as the reference
    # code does (a forward pass over up to the whole window per example, ~a quarter of a fit's tokens).
    remeasure_full: bool = False
    # Masking importance on the fast copy first (stage "importance_fast"), then float32 ("importance")
    # for each prompt's base row (the labels) and the masked rows whose importance lies within this
    # margin of importance_threshold where the fit reads it (recheck_slack); None: every row in
    # float32. All in bfloat16 it cost held-out F1 (-.009); with 0.1, 22% of the rows rerun, no
    # read decision differed from float32 (bench_n2g --recheck, 48 neurons; 0.05 got 1 of 6,871 wrong).
    importance_recheck: float | None = None
    train_fraction: float = 0.5        # paper: 10 train / 10 test of the top 20
    seed: int = 0
    batch_size: int = 64


# ----------------------------------------------------------------------------------------
# the fit
# ----------------------------------------------------------------------------------------
@dataclass
class Need:
    """A request of the fit: the neuron's activations on these token sequences (answered with
    one float array per sequence, cut to its length)."""

    seqs: list[list[int]]
    stage: str = ""  # prune | base | importance_fast | importance | variants: a driver may run stages differently


@dataclass
class Ask:
    """A request of the fit: substitute candidates for these positions of these prompts
    (answered as a :data:`SubstituteFn` answers)."""

    prompts: list[list[int]]
    positions: list[list[int]]


Steps = Generator[Any, Any, Any]
"""A stage of the fit written as a generator: it yields :class:`Need` / :class:`Ask` requests,
is sent their answers, and returns its result. One neuron's driver (:func:`drive`) answers
them with its own activation function; the batched driver answers the requests of many
neurons with shared forward passes. Either way the method is this one code path."""


def drive(steps: Steps, acts: Callable[[list[list[int]]], list[np.ndarray]],
          substitutes: SubstituteFn | None = None) -> Any:
    """Run a request generator to its end, answering each request at once; its return value."""
    try:
        req = next(steps)
        while True:
            if isinstance(req, Need):
                req = steps.send(acts(req.seqs))
            elif substitutes is None:
                raise ValueError("the fit asked for substitutes but no SubstituteFn was given")
            else:
                req = steps.send(substitutes(req.prompts, req.positions))
    except StopIteration as stop:
        return stop.value


class _Acts:
    """Calls the activation function in bounded batches and cuts each row to its length."""

    def __init__(self, fn: ActivationFn, batch_size: int) -> None:
        self.fn, self.batch_size, self.calls, self.tokens = fn, batch_size, 0, 0

    def __call__(self, seqs: list[list[int]]) -> list[np.ndarray]:
        # Similar lengths together keep padding small.
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        res: dict[int, np.ndarray] = {}
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            batch = [seqs[i] for i in idx]
            acts = self.fn(batch)
            self.calls += 1
            self.tokens += sum(len(b) for b in batch)
            for j, i in enumerate(idx):
                res[i] = np.asarray(acts[j], dtype=float)[: len(seqs[i])]
        return [res[i] for i in range(len(seqs))]


def split_examples(examples: Sequence[Example], fraction: float = 0.5, seed: int = 0) -> tuple[list[int], list[int]]:
    """Random train / held-out indices with a fixed seed (the papers: 10 / 10 of the top 20)."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_train = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else len(idx)
    return sorted(idx[:n_train]), sorted(idx[n_train:])


def pivots(ex: Example, cfg: N2GConfig) -> list[int]:
    """The positions of an example fitted as pivots: its max, plus (with pivot_threshold < 1)
    the other tokens at >= pivot_threshold x the max, strongest first, at most max_pivots.
    (A pivot that does not fire itself can still give lines, to its post-context tokens and
    substitutions: skipping them lost held-out firing tokens.)

        >>> pivots(Example([1, 2, 3], [0.2, 1.0, 0.6]), N2GConfig(pivot_threshold=0.5))
        [1, 2]
    """
    mx = ex.activations[int(ex.pivot)]
    others = sorted((p for p, a in enumerate(ex.activations) if p != ex.pivot and a > 0 and a >= cfg.pivot_threshold * mx),
                    key=lambda p: -ex.activations[p])
    return [int(ex.pivot)] + others[: max(cfg.max_pivots - 1, 0)]


def prune_many(acts: _Acts, examples: Sequence[Example], cfg: N2GConfig) -> list[tuple[list[int], float, float]]:
    """:func:`prune_steps` answered by ``acts``."""
    return drive(prune_steps(examples, cfg), acts)


def prune_steps(examples: Sequence[Example], cfg: N2GConfig) -> Steps:
    """Prune several examples at once (one activation request per round): for each, the shortest
    prior context ending at the pivot that keeps >= prune_threshold of the pivot activation.
    Returns (tokens, full-context pivot activation, pruned activation) per example.

    Contexts are tried shortest first, ``prune_chunk`` per round, lengths in steps of
    ``prune_step`` (the reference code tries every 5th length) and the whole prior, up to
    ``max_context``. As in the reference code, a context only counts if the pivot is still its
    strongest token. Every length from 1 (prune_step=1) made the first token of the shortest
    context the one that crossed 50%, so masking it looked important: lines carried spurious
    context and missed held-out tokens (firing F1 .59 vs .61 with steps of 5, SmolLM2)."""
    priors = [ex.tokens[: int(ex.pivot) + 1] for ex in examples]
    plans = []
    for prior in priors:
        lengths = list(range(1, min(len(prior), cfg.max_context) + 1))
        plans.append([n for n in lengths if n % cfg.prune_step == 0 or n == lengths[-1]])
    if cfg.remeasure_full:
        full = [float(a[-1]) for a in (yield Need(priors, "prune"))]
    else:
        full = [float(ex.activations[int(ex.pivot)]) for ex in examples]
    result: list[tuple[list[int], float, float] | None] = [None] * len(examples)
    last: list[tuple[list[int], float]] = [(p, 0.0) for p in priors]
    # As many rounds as the longest plan any example can have, even when done sooner: fits of many
    # neurons (the sweep) then reach their later stages in the same round, where the neurons that
    # ask for the same masked rows or variants share them (out of step, 27% of a sweep's float32
    # masking tokens ran again in a later round for other neurons).
    longest = cfg.max_context // cfg.prune_step + (1 if cfg.max_context % cfg.prune_step else 0)
    for s in range(0, max([longest] + [len(p) for p in plans]), cfg.prune_chunk):
        todo = [(e, n) for e in range(len(examples)) if result[e] is None for n in plans[e][s:s + cfg.prune_chunk]]
        res = yield Need([priors[e][-n:] for e, n in todo], "prune")
        for (e, n), a in zip(todo, res):
            if result[e] is not None:
                continue
            last[e] = (priors[e][-n:], float(a[-1]))
            if full[e] > 0 and a[-1] >= cfg.prune_threshold * full[e] and a[-1] >= a.max():
                result[e] = (priors[e][-n:], full[e], float(a[-1]))
    # Nothing short enough: the longest context tried, as the reference code does.
    return [r if r is not None else (last[e][0], full[e], last[e][1]) for e, r in enumerate(result)]


def prune(acts: _Acts, ex: Example, cfg: N2GConfig) -> tuple[list[int], float, float]:
    """:func:`prune_many` for one example."""
    return prune_many(acts, [ex], cfg)[0]


def importance_many(acts: _Acts, seqs: Sequence[list[int]], pad_token: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`importance_steps` answered by ``acts``."""
    return drive(importance_steps(seqs, pad_token), acts)


def importance_steps(seqs: Sequence[list[int]], pad_token: int) -> Steps:
    """(activations [T], importance [T, T]) per sequence, where importance[k, j] =
    1 - a_masked_k[j] / a[j] with token k replaced by ``pad_token``; one batched call."""
    masks = yield from masking_steps(seqs, pad_token)
    return [(m.base, m.imp()) for m in masks]


def importance_matrix(acts: _Acts, tokens: list[int], pad_token: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`importance_many` for one sequence."""
    return importance_many(acts, [tokens], pad_token)[0]


def _importance(base: np.ndarray, masked: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        imp = 1.0 - masked / base[None, :]
    imp[:, base <= 0] = 0.0
    return np.nan_to_num(imp)


def recheck_slack(imp: np.ndarray, base: np.ndarray, read: np.ndarray, threshold: float,
                  order_at: int | None = None) -> np.ndarray:
    """Per masked row k, how far it is from changing what the fit decides: the least
    |imp[k, i] - threshold| over the positions i >= k that are read (``read``, base > 0), and, at
    ``order_at`` (the pivot, whose important rows are substituted in order of importance),
    threshold - imp[k, order_at]: a row that may be important there must have its exact value.
    A row whose slack exceeds the error of its fast value keeps every decision.

        >>> imp = np.array([[0.9, 0.8], [0.0, 0.3]])
        >>> recheck_slack(imp, np.ones(2), np.array([True, True]), 0.75).round(2).tolist()
        [0.05, 0.45]
        >>> recheck_slack(imp, np.ones(2), np.array([True, False]), 0.75, order_at=1).round(2).tolist()
        [-0.05, 0.45]
    """
    n = len(base)
    dist = np.abs(imp - threshold)
    dist[:, ~(np.asarray(read, dtype=bool) & (base > 0))] = np.inf
    dist[np.tril_indices(n, -1)] = np.inf  # masking a later token cannot change position i
    slack = dist.min(axis=1) if n else np.zeros(0)
    if order_at is not None and base[order_at] > 0:
        slack[: order_at + 1] = np.minimum(slack[: order_at + 1], threshold - imp[: order_at + 1, order_at])
    return slack


@dataclass
class Masking:
    """One sequence's masking rows: ``base`` (the sequence's activations) and ``masked[k]``
    (token k masked), from the fast stage where ``exact[k]`` is False. ``fast`` keeps the fast
    answers and ``read`` / ``order_at`` what the fit read, to audit the recheck."""

    tokens: list[int]
    base: np.ndarray
    masked: np.ndarray
    exact: np.ndarray
    fast: np.ndarray | None = None
    read: np.ndarray | None = None
    order_at: int | None = None

    def imp(self) -> np.ndarray:
        """importance[k, i] = 1 - masked[k, i] / base[i] (0 where base <= 0)."""
        return _importance(self.base, self.masked)

    def row(self, k: int, pad_token: int) -> list[int]:
        """The sequence with token k masked (k < 0: the base row)."""
        return [pad_token if j == k else t for j, t in enumerate(self.tokens)]

    def audit(self, threshold: float) -> list[tuple[float, int, int]]:
        """Per exact row: (its slack computed from the fast answer, decisions read, decisions
        the fast answer gets wrong), for the benchmark's choice of the margin."""
        if self.fast is None or self.read is None:
            return []
        fast = _importance(self.base, self.fast)
        slack = recheck_slack(fast, self.base, self.read, threshold, self.order_at)
        exact = self.imp()
        n = len(self.base)
        seen = np.triu(np.ones((n, n), dtype=bool)) & (self.read & (self.base > 0))[None, :]
        wrong = ((fast > threshold) != (exact > threshold)) & seen
        return [(float(slack[k]), int(seen[k].sum()), int(wrong[k].sum())) for k in np.flatnonzero(self.exact)]


def masking_steps(seqs: Sequence[list[int]], pad_token: int, recheck: float | None = None,
                  threshold: float = 0.75, reads: Callable[[int, np.ndarray], np.ndarray] | None = None,
                  order_at: Sequence[int | None] | None = None) -> Steps:
    """The :class:`Masking` of each sequence. Without ``recheck`` every row runs in the
    "importance" stage (float32) in one call. With it, every row runs in "importance_fast" (the
    driver's fast copy), then each base row (the labels come from it) and the masked rows whose
    :func:`recheck_slack` is <= ``recheck`` run again in "importance": ``reads(s, base)``, the
    positions of sequence s that the fit reads; ``order_at[s]``, its pivot if the order of its
    important rows is read. Every row whose fast importance errs by less than ``recheck`` then
    decides as in float32."""
    batch: list[list[int]] = []
    for tokens in seqs:
        batch.append(list(tokens))
        batch += [[pad_token if j == k else t for j, t in enumerate(tokens)] for k in range(len(tokens))]
    res = yield Need(batch, "importance" if recheck is None else "importance_fast")
    masks, at = [], 0
    for tokens in seqs:
        n = len(tokens)
        masked = np.stack(res[at + 1: at + 1 + n]) if n else np.zeros((0, 0))
        masks.append(Masking(list(tokens), res[at], masked, np.full(n, recheck is None)))
        at += 1 + n
    if recheck is not None:
        for s, m in enumerate(masks):
            m.fast, m.order_at = m.masked.copy(), order_at[s] if order_at is not None else None
        yield from recheck_steps(masks, pad_token, recheck, threshold,
                                 [reads(s, m.base) if reads else np.ones(len(m.base), dtype=bool)
                                  for s, m in enumerate(masks)], rebase=True, reread=reads)
    return masks


def recheck_steps(masks: Sequence[Masking], pad_token: int, recheck: float, threshold: float,
                  reads: Sequence[np.ndarray], rebase: bool = False,
                  reread: Callable[[int, np.ndarray], np.ndarray] | None = None) -> Steps:
    """Run again in "importance" the rows of ``masks`` whose slack at the positions ``reads``
    (added to the ones read before) is <= ``recheck``. ``rebase``: the base rows are fast
    answers too: they run first, with the rows their slack picks, and ``reread(s, base)`` gives
    the read positions from the exact base; a second round runs the rows that base picks in
    addition (after it, every row within the margin is exact)."""
    for m, r in zip(masks, reads):
        m.read = r.copy() if m.read is None else (m.read | r)
    for first in ([True, False] if rebase else [False]):
        ask = [(s, -1) for s in range(len(masks))] if first else []
        for s, m in enumerate(masks):
            slack = recheck_slack(m.imp(), m.base, m.read, threshold, m.order_at)
            ask += [(s, int(k)) for k in np.flatnonzero((slack <= recheck) & ~m.exact)]
        # Asked even when empty: every fit takes the same rounds, so the fits of many neurons stay
        # in step and their later stages share batches as without the recheck (bfloat16 answers
        # change in the last bits with what else is in the batch).
        res = yield Need([masks[s].row(k, pad_token) for s, k in ask], "importance")
        for (s, k), a in zip(ask, res):
            if k < 0:
                masks[s].base = a
                if reread is not None:
                    masks[s].read = reread(s, a)
            else:
                masks[s].masked[k], masks[s].exact[k] = a, True


def _lines(tokens: list[int], norm_acts: np.ndarray, imp: np.ndarray, cfg: N2GConfig,
           forced: dict[int, set[int]] | None = None) -> list[tuple[list[int], list[bool], float]]:
    """Lines for every activating token: (raw tokens backwards, important flags, activation).
    ``forced`` adds the original prompt's important positions to an augmented variant."""
    out = []
    for i, a in enumerate(norm_acts):
        if not a > cfg.activation_threshold:
            continue
        raw, flags, last = [], [], 0
        for j in range(i, -1, -1):
            important = imp[j, i] > cfg.importance_threshold or (forced is not None and j in forced.get(i, ()))
            keep = important or j == i
            raw.append(tokens[j])
            flags.append(keep)
            if keep:
                last = len(raw) - 1
        out.append((raw[: last + 1], flags[: last + 1], float(a)))
    return out


@dataclass
class FitTrace:
    """What the fit did (for benchmarks and debugging)."""

    pruned_lengths: list[int] = field(default_factory=list)
    variants_tried: int = 0
    variants_kept: int = 0
    lines: int = 0
    masked_rows: int = 0       # masking rows read (with importance_recheck)
    rechecked_rows: int = 0    # of them, run again in float32
    audit: list[tuple[float, int, int]] = field(default_factory=list)  # Masking.audit of each rechecked row

    def add(self, other: "FitTrace") -> None:
        """Count another part of the same fit (:func:`loaders.n2g.sweep.run_sweep`)."""
        for name in ("variants_tried", "variants_kept", "lines", "masked_rows", "rechecked_rows"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.pruned_lengths += other.pruned_lengths
        self.audit += other.audit

    def add_masks(self, masks: Sequence["Masking"], threshold: float) -> None:
        for m in masks:
            if m.fast is not None:
                self.masked_rows += len(m.exact)
                self.rechecked_rows += int(m.exact.sum())
                self.audit += m.audit(threshold)


def _scaled(base: np.ndarray, piv: int, scale: float, base_max: float, cfg: N2GConfig) -> np.ndarray:
    """Normalised activations of a pruned prompt. The pivot is rescaled to its full-context
    activation (the reference code's scale_factor). The ratio was measured for the pivot only:
    applied to the other tokens too (``scale_context``, as the reference code does) it lifted
    tokens that fire weakly in the short context over the threshold and added false lines
    (held-out firing F1 .57 -> .59 without it, SmolLM2, 28 neurons)."""
    if cfg.scale_context:
        return base * scale
    out = base / base_max
    out[piv] = base[piv] * scale
    return out


def post_context(ex: Example, n: int, sentence_end: Callable[[int], bool] | None = None) -> list[int]:
    """Up to ``n`` tokens after the pivot, cut after the token that ends the pivot's sentence
    (the reference code keeps ``max_post_context_tokens`` = 5 of the pivot's sentence).

        >>> post_context(Example([1, 9, 2, 3, 4], [0, 1, 0, 0, 0]), 5, lambda t: t == 3)
        [2, 3]
    """
    p = int(ex.pivot)
    if sentence_end is not None and sentence_end(ex.tokens[p]):
        return []
    out: list[int] = []
    for t in ex.tokens[p + 1: p + 1 + max(n, 0)]:
        out.append(t)
        if sentence_end is not None and sentence_end(t):
            break
    return out


def fit_n2g(fn: ActivationFn, train: Sequence[Example], *, pad_token: int,
            base_max: float | None = None, substitutes: SubstituteFn | None = None,
            normalise: Callable[[int], Hashable] | None = None, config: N2GConfig = N2GConfig(),
            sentence_end: Callable[[int], bool] | None = None, trace: FitTrace | None = None) -> N2GModel:
    """Fit the N2G trie of one neuron from its training examples.

    ``base_max`` normalises activations (default: the largest pivot activation of ``train``);
    ``pad_token`` is the neutral token used for masking. Pick one that does not end the
    document (e.g. a space): on SmolLM2, masking with ``<|endoftext|>`` cut the context, marked
    too many tokens important and lowered held-out F1 (0.27 vs 0.32 with " ", 52 neurons).
    ``sentence_end`` (token id -> bool) stops the post-context at the pivot's sentence end."""
    steps = fit_steps(train, pad_token=pad_token, base_max=base_max, substitute=substitutes is not None,
                      normalise=normalise, config=config, sentence_end=sentence_end, trace=trace)
    return drive(steps, _Acts(fn, config.batch_size), substitutes)


def fit_steps(train: Sequence[Example], *, pad_token: int, base_max: float | None = None,
              substitute: bool = False, normalise: Callable[[int], Hashable] | None = None,
              config: N2GConfig = N2GConfig(), sentence_end: Callable[[int], bool] | None = None,
              trace: FitTrace | None = None) -> Steps:
    """:func:`fit_n2g` as requests: yields :class:`Need` (activations of sequences) and, with
    ``substitute``, :class:`Ask` (substitute candidates); returns the :class:`N2GModel`."""
    base_max = float(base_max if base_max is not None else max(max(e.activations) for e in train))
    lines = yield from line_steps(train, pad_token=pad_token, base_max=base_max, substitute=substitute,
                                  normalise=normalise, config=config, sentence_end=sentence_end, trace=trace)
    return trie_of(lines, normalise, config)


Line = tuple[tuple[int, ...], list[tuple[Hashable | None, bool]], list[int], float]
"""A trie line with its place in the fit's order: (key, trie keys, raw token ids, activation)."""


def trie_of(lines: Sequence[Line], normalise: Callable[[int], Hashable] | None = None,
            config: N2GConfig = N2GConfig()) -> N2GModel:
    """The trie of a fit's lines, inserted in their keys' order (node ids follow insertion), so
    lines fitted in parts (:func:`loaders.n2g.sweep.run_sweep`) give the same trie as one fit."""
    model = N2GModel(normalise)
    for _key, keys, raw, a in sorted(lines, key=lambda line: line[0]):
        model.add_line(keys, raw, a)
    return _finish(model, config)


def line_steps(train: Sequence[Example], *, pad_token: int, base_max: float, ids: Sequence[int] | None = None,
               substitute: bool = False, normalise: Callable[[int], Hashable] | None = None,
               config: N2GConfig = N2GConfig(), sentence_end: Callable[[int], bool] | None = None,
               trace: FitTrace | None = None) -> Steps:
    """The fit's trie lines (:data:`Line`), keyed by (phase, example id, pivot rank, variant,
    line): the examples' own lines first, then their substitution variants', as one fit inserts
    them. Each example is fitted on its own (the stages only pool requests), so the lines of a
    neuron's examples fitted in parts, with ``ids`` their places among its training examples,
    are the lines of one fit."""
    cfg = config
    norm = normalise or (lambda t: t)
    if base_max <= 0:
        raise ValueError("N2G needs a positive max activation to normalise by")
    trace = trace if trace is not None else FitTrace()
    out: list[Line] = []

    def insert(lines: list[tuple[list[int], list[bool], float]], key: tuple[int, ...]) -> None:
        for n, (raw, flags, a) in enumerate(lines):
            out.append(((*key, n), [(norm(t) if f else WILDCARD, f) for t, f in zip(raw, flags)], raw, a))
            trace.lines += 1

    ids = list(range(len(train))) if ids is None else list(ids)
    kept_ids = [i for i, ex in zip(ids, train) if ex.pivot is not None and ex.activations[ex.pivot] > 0]
    train = [ex for ex in train if ex.pivot is not None and ex.activations[ex.pivot] > 0]
    # Every token of an example at >= pivot_threshold x its max is pruned and fitted as its
    # own pivot (the reference code's token_activation_threshold; 1.0: only the max). With the
    # max only, firing tokens away from it got no line while the lookup baseline knows every
    # firing train token (held-out firing F1 .59 -> .61 with 0.5, SmolLM2, 28 neurons).
    place = [(i, rank) for i, ex in zip(kept_ids, train) for rank in range(len(pivots(ex, cfg)))]
    train = [Example(ex.tokens, ex.activations, p) for ex in train for p in pivots(ex, cfg)]
    # Each stage runs for all examples at once: few, large activation calls.
    pruned = yield from prune_steps(train, cfg)
    # The pruned prompt goes on past the pivot (reference: up to 5 tokens of its sentence), so
    # firing tokens just after the pivot get lines too, with the pivot's context before them.
    prompts = [(tokens + post_context(ex, cfg.post_context, sentence_end), len(tokens) - 1)
               for ex, (tokens, _, _) in zip(train, pruned)]
    # Rescale the pruned context to the full context's pivot activation (reference code's
    # scale_factor), then normalise by the neuron's max. A failed prune (only when the pivot
    # lies beyond max_context) must not blow it up.
    scales = [(min(full / pruned_act, 1.0 / cfg.prune_threshold) if pruned_act > 0 else 1.0) / base_max
              for _, full, pruned_act in pruned]
    # Post-context tokens after the last one that fires get no line: masking them (the cost grows
    # with the square of the length) is skipped. Asked even when no prompt goes on past its pivot,
    # so that fits stay in step (above).
    longer = [e for e, (t, piv) in enumerate(prompts) if len(t) > piv + 1]
    bases = yield Need([prompts[e][0] for e in longer], "base")
    for e, b in zip(longer, bases):
        (t, piv), sc = prompts[e], scales[e]
        prompts[e] = (t[: max([piv] + [i for i, a in enumerate(_scaled(b, piv, sc, base_max, cfg))
                                       if i > piv and a > cfg.activation_threshold]) + 1], piv)
    cut = [p for p, _ in prompts]
    substituting = substitute and cfg.n_substitutes > 0

    def fires(e: int, base: np.ndarray) -> np.ndarray:  # where prompt e's lines (or its variants') start
        return _scaled(base, prompts[e][1], scales[e], base_max, cfg) > cfg.activation_threshold

    # With importance_recheck the rows come from the fast copy, and float32 where a decision that
    # is read could flip: the lines' positions now, the pivot's order of importance when
    # substituting, the variants' firing positions once they are known (below).
    masks = yield from masking_steps(cut, pad_token, cfg.importance_recheck, cfg.importance_threshold, reads=fires,
                                     order_at=[piv for _, piv in prompts] if substituting else None)
    jobs = []  # (tokens, pivot, scale, base activations, importance, important sets) per example
    for e, ((tokens, piv), scale, m) in enumerate(zip(prompts, scales, masks)):
        trace.pruned_lengths.append(piv + 1)
        # Labels are the prompt's own (pivot rescaled). Gating them by the training text's
        # activation at the same positions (a token firing only in the cut-down prompt gets no
        # line) cost held-out recall: firing F1 .665 -> .660, 70 neurons, SmolLM2.
        imp = m.imp()
        insert(_lines(tokens, _scaled(m.base, piv, scale, base_max, cfg), imp, cfg), (0, *place[e], 0))
        jobs.append((tokens, piv, scale, m.base, imp, _important_sets(imp, cfg)))
    if not substituting:
        trace.add_masks(masks, cfg.importance_threshold)
        return out
    # Augment: substitute the tokens important for the pivot (most important first); tokens
    # after the pivot cannot change it. One substitute call for all prompts.
    asked = [(e, sorted((j for j in range(piv + 1) if imp[j, piv] > cfg.importance_threshold),
                        key=lambda j: -imp[j, piv])[: cfg.max_augment_positions])
             for e, (tokens, piv, _scale, base, imp, _sets) in enumerate(jobs) if base[piv] > 0]
    asked = [(e, positions) for e, positions in asked if positions]
    cands = (yield Ask([jobs[e][0] for e, _ in asked], [positions for _, positions in asked])) if asked else []
    variants: list[tuple[int, list[int]]] = []
    for (e, positions), subs_at in zip(asked, cands):
        tokens = jobs[e][0]
        seen = {tuple(tokens)}
        for j, subs_j in zip(positions, subs_at):
            n = cfg.n_substitutes if j != jobs[e][1] or cfg.pivot_substitutes is None else cfg.pivot_substitutes
            for sub in list(subs_j)[:n]:
                v = list(tokens)
                v[j] = int(sub)
                if tuple(v) not in seen and norm(int(sub)) != norm(tokens[j]):
                    seen.add(tuple(v))
                    variants.append((e, v))
    if not variants:
        trace.add_masks(masks, cfg.importance_threshold)
        return out
    trace.variants_tried += len(variants)
    res = yield Need([v for _, v in variants], "variants")
    kept = [(e, v, a) for (e, v), a in zip(variants, res)
            if a[jobs[e][1]] >= cfg.augment_threshold * jobs[e][3][jobs[e][1]]]
    trace.variants_kept += len(kept)
    vmasks: list[Masking] = []
    if cfg.reimportance_augmented:
        vmasks = yield from masking_steps([v for _, v, _ in kept], pad_token, cfg.importance_recheck,
                                          cfg.importance_threshold, reads=lambda s, b: fires(kept[s][0], b))
    vbases = [m.base for m in vmasks] if vmasks else [a for _, _, a in kept]
    if cfg.importance_recheck is not None and kept:
        # A variant reads its prompt's importance (its lines' forced positions; all of it without
        # reimportance_augmented) where the variant fires.
        read: dict[int, np.ndarray] = {}
        for (e, _v, _a), vbase in zip(kept, vbases):
            read[e] = read[e] | fires(e, vbase) if e in read else fires(e, vbase)
        yield from recheck_steps([masks[e] for e in read], pad_token, cfg.importance_recheck,
                                 cfg.importance_threshold, list(read.values()))
        for e in read:
            imp = masks[e].imp()
            jobs[e] = jobs[e][:4] + (imp, _important_sets(imp, cfg))
    # Without reimportance_augmented (cheaper) a variant reuses the original's importance (same
    # positions, one token changed).
    vimps = [m.imp() for m in vmasks] if vmasks else [jobs[e][4] for e, _, _ in kept]
    for k, ((e, v, _), vbase, vimp) in enumerate(zip(kept, vbases, vimps)):
        insert(_lines(v, _scaled(vbase, jobs[e][1], jobs[e][2], base_max, cfg), vimp, cfg, forced=jobs[e][5]),
               (1, *place[e], k))
    trace.add_masks(list(masks) + list(vmasks), cfg.importance_threshold)
    return out


def _important_sets(imp: np.ndarray, cfg: N2GConfig) -> dict[int, set[int]]:
    """Position i -> the positions j <= i important for it."""
    return {i: {j for j in range(i + 1) if imp[j, i] > cfg.importance_threshold} for i in range(len(imp))}


def _finish(model: N2GModel, cfg: N2GConfig) -> N2GModel:
    if cfg.merge_ignores:
        model.merge_ignores()
    return model


@dataclass
class NeuronResult:
    """One neuron's fitted N2G model and its held-out scores beside the token-lookup baseline."""

    model: N2GModel
    scores: dict[str, dict[str, float | None]]
    baseline: dict[str, dict[str, float | None]]
    train: list[int]
    test: list[int]
    base_max: float
    trace: FitTrace

    def props(self, decode: Callable[[int], str] | None = None) -> dict[str, Any]:
        """Neuron properties: n2g_* and baseline_* scores, sizes, graph JSON and DOT."""
        props: dict[str, Any] = {}
        props.update(flat_scores(self.scores, "n2g_"))
        props.update(flat_scores(self.baseline, "baseline_"))
        sets = self.model.token_sets()
        props.update({
            "n2g_nodes": len(self.model.nodes), "n2g_train_examples": len(self.train),
            "n2g_test_examples": len(self.test), "n2g_max_activation": self.base_max,
            "n2g_num_activating": len(sets["activating"]), "n2g_num_important": len(sets["important"]),
            "n2g_graph": json.dumps(self.model.to_dict(decode)), "n2g_dot": self.model.to_dot(decode),
        })
        return {k: v for k, v in props.items() if v is not None}


def evaluate(model: N2GModel, test: Sequence[Example], base_max: float, threshold: float = FIRE_THRESHOLD
             ) -> dict[str, dict[str, float | None]]:
    """Firing / non-firing P/R/F1 of a model's predictions on held-out examples."""
    true = np.concatenate([np.asarray(e.activations) / base_max for e in test]) if test else np.zeros(0)
    pred = np.concatenate([model.predict(e.tokens) for e in test]) if test else np.zeros(0)
    return classification_scores(true, pred, threshold)


def run_neuron(fn: ActivationFn, examples: Sequence[Example], *, pad_token: int,
               substitutes: SubstituteFn | None = None,
               normalise: Callable[[int], Hashable] | None = None,
               sentence_end: Callable[[int], bool] | None = None,
               config: N2GConfig = N2GConfig()) -> NeuronResult:
    """Split, fit on train, score N2G and the token-lookup baseline on the held-out half.

        >>> fn = lambda seqs: [[float(t == 2) for t in s] for s in seqs]
        >>> exs = [Example([i, 2], [0.0, 1.0]) for i in range(3, 7)]
        >>> r = run_neuron(fn, exs, pad_token=0)
        >>> r.scores["firing"]["f1"]
        1.0
    """
    steps = run_steps(examples, pad_token=pad_token, substitute=substitutes is not None, normalise=normalise,
                      sentence_end=sentence_end, config=config)
    return drive(steps, _Acts(fn, config.batch_size), substitutes)


def run_steps(examples: Sequence[Example], *, pad_token: int, substitute: bool = False,
              normalise: Callable[[int], Hashable] | None = None,
              sentence_end: Callable[[int], bool] | None = None,
              config: N2GConfig = N2GConfig()) -> Steps:
    """:func:`run_neuron` as requests (see :func:`fit_steps`); returns the :class:`NeuronResult`."""
    if not examples:
        raise ValueError("N2G needs at least one example")
    train_idx, test_idx = split_examples(examples, config.train_fraction, config.seed)
    train = [examples[i] for i in train_idx]
    # Normalise by the neuron's largest activation over all its top examples (the reference
    # code uses the dataset max; the top example holds it).
    base_max = max(max(e.activations) for e in examples)
    trace = FitTrace()
    model = yield from fit_steps(train, pad_token=pad_token, base_max=base_max, substitute=substitute,
                                 normalise=normalise, sentence_end=sentence_end, config=config, trace=trace)
    return scored(model, examples, train_idx, test_idx, base_max, trace, config)


def scored(model: N2GModel, examples: Sequence[Example], train_idx: list[int], test_idx: list[int],
           base_max: float, trace: FitTrace, config: N2GConfig) -> NeuronResult:
    """A fitted trie's :class:`NeuronResult`: held-out scores beside the token lookup's."""
    train = [examples[i] for i in train_idx]
    test = [examples[i] for i in test_idx]
    scores = evaluate(model, test, base_max, config.fire_threshold)
    lookup = TokenLookup.fit((e.tokens, np.asarray(e.activations) / base_max) for e in train)
    true = np.concatenate([np.asarray(e.activations) / base_max for e in test]) if test else np.zeros(0)
    pred = np.concatenate([lookup.predict(e.tokens) for e in test]) if test else np.zeros(0)
    baseline = classification_scores(true, pred, config.fire_threshold)
    return NeuronResult(model, scores, baseline, train_idx, test_idx, base_max, trace)
