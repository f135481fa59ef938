"""Neuron2Graph (N2G): a neuron's behaviour as a trie of activating and important tokens.

A port of Foote et al., "Neuron to Graph" (ICLR 2023 RTML workshop, arXiv 2304.12918; longer
preprint arXiv 2305.19911; code apartresearch/Neuron2Graph and the albertsgarde `n2g` fork),
written on token ids and a plain activation callable so it runs on any model:

1. **Split** a neuron's top examples into train and held-out halves (fixed seed).
2. **Prune** each training example to the shortest prior context (every 5th length, as the
   reference code tries them) that keeps >= 50% of the pivot activation with the pivot still
   the strongest token; up to 5 tokens after the pivot, within its sentence, are kept. The
   pivots are each example's max and its other tokens at >= 0.5x that max.
3. **Importance** of token k for token j: ``1 - a_masked/a`` with token k replaced by a
   neutral (pad) token.
4. **Augment**: substitute each important token with candidates from a
   :data:`SubstituteFn` and keep the variants whose pivot activation stays >= 0.5x. The
   papers ask a masked LM ((Distil)BERT) for the words that fit the masked position; offline,
   its causal analogue is the model's own next-token prediction at that position given the
   tokens before it (:func:`lm_substitutes`). The context-free alternative is the model's
   embedding neighbours (cosine on ``W_E``, :func:`embedding_neighbours` through
   :func:`token_substitutes`), mostly the token's own case and space variants. The pipeline
   and the benchmark take both in turns (:func:`combined_substitutes`), and more of them at
   the pivot, where a kept substitute is a new activating token the lookup baseline cannot know.
5. **Trie**: for every token with normalised activation > 0.5, walk backwards over its context;
   tokens with importance > 0.75 become nodes, the others wildcard ("ignore") nodes; the node
   where a line stops stores the normalised activation. Where a wildcard has siblings, their
   continuations are merged into it (the reference code's ``merge_ignores``).
6. **Predict** a token by matching backwards through the trie (exact token or wildcard), the
   max over every matching path's stored activation. Tokens are keyed by id; the reference
   code's case and space folding (:func:`text_normaliser`) is an option, as it joins tokens a
   neuron tells apart.

    >>> fn = lambda seqs: [[float(t == 2 and i >= 2 and s[i - 2] == 1) for i, t in enumerate(s)]
    ...                    for s in seqs]
    >>> ex = [Example([1, 7, 2], [0, 0, 1.0], 2), Example([1, 8, 2, 3], [0, 0, 1.0, 0], 2)]
    >>> m = fit_n2g(fn, ex, pad_token=0)
    >>> m.predict([1, 5, 2, 4, 2]).tolist()
    [0.0, 0.0, 1.0, 0.0, 0.0]

Storage (:func:`build_n2g`): ``PatternNode`` nodes under the neuron (``HAS_PATTERN``),
``PATTERN_NEXT`` edges one token further back, ``MATCHES {role}`` edges to ``Token`` nodes,
the held-out scores as neuron properties (``n2g_firing_f1``, ``baseline_firing_f1``, ...) and
the graph as JSON (``n2g_graph``) and Graphviz DOT (``n2g_dot``). Similar neurons (symmetric
Jaccard of their tagged token sets) become ``SIMILAR {kind:'n2g'}`` edges.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from neurograph.domain import neuron_key, pattern_key, token_key
from neurograph.errors import NotFound

from .n2g_eval import FIRE_THRESHOLD, TokenLookup, classification_scores, flat_scores

log = logging.getLogger(__name__)

ActivationFn = Callable[[list[list[int]]], np.ndarray]
"""Token-id sequences -> one neuron's activation per position: an array [B, T] (right-padded,
as a causal model's positions do not see the padding) or a list of per-sequence arrays."""

SubstituteFn = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]]], list[list[list[int]]]]
"""(prompts, positions asked per prompt) -> candidate token ids for each asked position of each
prompt, best first. One call per fit, with every prompt of the neuron: a context-aware source
(:func:`lm_substitutes`) runs each prompt once for all its positions."""

WILDCARD = None  # the trie key of an "ignore" node: matches any token


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
    train_fraction: float = 0.5        # paper: 10 train / 10 test of the top 20
    seed: int = 0
    batch_size: int = 64


# ----------------------------------------------------------------------------------------
# the trie
# ----------------------------------------------------------------------------------------
@dataclass
class PatternNode:
    """One trie node: the token key it matches (None: any token), its depth back from the
    activating token (0), the raw token ids seen there and, where a line ended, the stored
    normalised activation."""

    id: int
    key: Hashable | None
    depth: int
    role: str  # activating | important | ignore
    token_ids: set[int] = field(default_factory=set)
    children: dict[Hashable | None, "PatternNode"] = field(default_factory=dict)
    end: float | None = None


class N2GModel:
    """A fitted N2G trie for one neuron; ``predict`` gives normalised activations per token.

        >>> m = N2GModel()
        >>> m.add_line([(3, True), (WILDCARD, False), (1, True)], [3, 9, 1], 0.8)
        >>> m.predict([1, 2, 3]).tolist(), m.predict([2, 2, 3]).tolist()
        ([0.0, 0.0, 0.8], [0.0, 0.0, 0.0])
    """

    def __init__(self, normalise: Callable[[int], Hashable] | None = None) -> None:
        self.normalise = normalise or (lambda t: t)
        self.root = PatternNode(-1, None, -1, "root")
        self.nodes: list[PatternNode] = []

    def add_line(self, keys: Sequence[tuple[Hashable | None, bool]], raw: Sequence[int], activation: float) -> None:
        """Insert one line: (key, important) pairs from the activating token backwards (key
        None = wildcard) with their raw token ids; the last node stores ``activation``."""
        node = self.root
        for depth, ((key, _important), tok) in enumerate(zip(keys, raw)):
            child = node.children.get(key)
            if child is None:
                role = "activating" if depth == 0 else ("ignore" if key is WILDCARD else "important")
                child = PatternNode(len(self.nodes), key, depth, role)
                self.nodes.append(child)
                node.children[key] = child
            if key is not WILDCARD:
                child.token_ids.add(int(tok))
            node = child
        # Repeated lines keep the largest activation: prediction is a max over paths anyway.
        node.end = activation if node.end is None else max(node.end, activation)

    def predict_at(self, tokens: Sequence[Hashable], pos: int) -> float:
        """Max stored activation over every trie path that matches backwards from ``pos``."""
        first = self.root.children.get(tokens[pos])
        if first is None:
            return 0.0
        best = 0.0
        stack = [(first, pos)]
        while stack:
            node, p = stack.pop()
            if node.end is not None and node.end > best:
                best = node.end
            if p == 0 or not node.children:
                continue
            for key in (tokens[p - 1], WILDCARD):
                child = node.children.get(key)
                if child is not None:
                    stack.append((child, p - 1))
        return best

    def predict(self, tokens: Sequence[int]) -> np.ndarray:
        keys = [self.normalise(int(t)) for t in tokens]
        return np.array([self.predict_at(keys, i) for i in range(len(keys))], dtype=float)

    def merge_ignores(self) -> None:
        """The reference code's last fitting step: where a node has a wildcard child, the
        continuations of its other children are merged into the wildcard's subtree, and a
        child that ends no line is dropped. A context token seen next to a wildcard thus
        generalises to any token there: "B <- x <- A" beside "B <- * <- C" becomes
        "B <- * <- {A, C}", while "B <- x" itself (a line end) stays.

            >>> m = N2GModel()
            >>> m.add_line([(3, True), (5, True), (1, True)], [3, 5, 1], 0.9)
            >>> m.add_line([(3, True), (WILDCARD, False), (2, True)], [3, 9, 2], 0.7)
            >>> m.merge_ignores()
            >>> m.predict([1, 6, 3]).tolist(), m.predict([2, 5, 3]).tolist()
            ([0.0, 0.0, 0.9], [0.0, 0.0, 0.7])
        """
        queue = deque([self.root])
        while queue:
            node = queue.popleft()
            wild = node.children.get(WILDCARD)
            if wild is not None:
                for key, child in list(node.children.items()):
                    if key is WILDCARD:
                        continue
                    for grand in child.children.values():
                        self._merge_into(wild, grand)
                    if child.end is None:
                        del node.children[key]
            queue.extend(node.children.values())
        # Number the nodes left, parents before children, in insertion order.
        self.nodes = []
        stack = list(reversed(self.root.children.values()))
        while stack:
            n = stack.pop()
            n.id = len(self.nodes)
            self.nodes.append(n)
            stack.extend(reversed(n.children.values()))

    @staticmethod
    def _merge_into(parent: PatternNode, src: PatternNode) -> None:
        """Add a copy of ``src``'s subtree under ``parent``, joining nodes with the same key."""
        dst = parent.children.get(src.key)
        if dst is None:
            dst = parent.children[src.key] = PatternNode(-1, src.key, src.depth, src.role)
        dst.token_ids |= src.token_ids
        if src.end is not None:
            dst.end = src.end if dst.end is None else max(dst.end, src.end)
        for c in src.children.values():
            N2GModel._merge_into(dst, c)

    def token_sets(self) -> dict[str, set[int]]:
        """Raw token ids by role: activating (depth 0) and important (context) nodes."""
        out: dict[str, set[int]] = {"activating": set(), "important": set()}
        for n in self.nodes:
            if n.role in out:
                out[n.role] |= n.token_ids
        return out

    def edges(self) -> list[tuple[int, int]]:
        return [(n.id, c.id) for n in self.nodes for c in n.children.values()]

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self, decode: Callable[[int], str] | None = None) -> dict[str, Any]:
        """A JSON-able form: {graph: {nodes: [...], edges: [[parent, child], ...]}}."""
        decode = decode or str
        nodes = [{
            "id": n.id, "depth": n.depth, "role": n.role,
            "token": None if n.key is WILDCARD else decode(min(n.token_ids)),
            "token_ids": sorted(n.token_ids), "activation": n.end, "is_end": n.end is not None,
        } for n in self.nodes]
        return {"graph": {"nodes": nodes, "edges": [list(e) for e in self.edges()]}}

    def to_dot(self, decode: Callable[[int], str] | None = None) -> str:
        """Graphviz DOT as the papers draw it: read right to left, activating tokens red,
        context tokens blue, wildcards dropped (dashed edges skip over them), tokens merged
        per depth."""
        decode = decode or str
        lines = ['digraph N2G {', '  graph [rankdir=RL, splines=spline, ranksep=1.5, nodesep=0.2];',
                 '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
        ids: dict[tuple[int, Hashable], str] = {}
        edges: set[tuple[str, str, bool]] = set()

        def node_id(n: PatternNode) -> str:
            k = (n.depth, n.key)
            if k not in ids:
                ids[k] = f"n{len(ids)}"
                label = decode(min(n.token_ids)).replace("\\", "\\\\").replace('"', '\\"')
                color = "#ff8080" if n.role == "activating" else "#9ecbff"
                extra = ", peripheries=2" if n.end is not None else ""
                lines.append(f'  {ids[k]} [label="{label}", fillcolor="{color}"{extra}];')
            return ids[k]

        def walk(n: PatternNode, visible: str | None, skipped: bool) -> None:
            if n.key is WILDCARD:
                for c in n.children.values():
                    walk(c, visible, True)
                return
            me = node_id(n)
            if visible is not None:
                edges.add((me, visible, skipped))
            for c in n.children.values():
                walk(c, me, False)

        for c in self.root.children.values():
            walk(c, None, False)
        for a, b, skipped in sorted(edges):
            lines.append(f"  {a} -> {b}{' [style=dashed]' if skipped else ''};")
        lines.append("}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# the fit
# ----------------------------------------------------------------------------------------
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
    """Prune several examples at once (one activation call per round): for each, the shortest
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
    full = [float(a[-1]) for a in acts(priors)]
    result: list[tuple[list[int], float, float] | None] = [None] * len(examples)
    last: list[tuple[list[int], float]] = [(p, 0.0) for p in priors]
    for s in range(0, max((len(p) for p in plans), default=0), cfg.prune_chunk):
        todo = [(e, n) for e in range(len(examples)) if result[e] is None for n in plans[e][s:s + cfg.prune_chunk]]
        if not todo:
            break
        res = acts([priors[e][-n:] for e, n in todo])
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
    """(activations [T], importance [T, T]) per sequence, where importance[k, j] =
    1 - a_masked_k[j] / a[j] with token k replaced by ``pad_token``; one batched call."""
    batch: list[list[int]] = []
    for tokens in seqs:
        batch.append(list(tokens))
        for k in range(len(tokens)):
            m = list(tokens)
            m[k] = pad_token
            batch.append(m)
    res = acts(batch)
    out, at = [], 0
    for tokens in seqs:
        base = res[at]
        masked = np.stack(res[at + 1: at + 1 + len(tokens)]) if len(tokens) else np.zeros((0, 0))
        at += 1 + len(tokens)
        with np.errstate(divide="ignore", invalid="ignore"):
            imp = 1.0 - masked / base[None, :]
        imp[:, base <= 0] = 0.0
        out.append((base, np.nan_to_num(imp)))
    return out


def importance_matrix(acts: _Acts, tokens: list[int], pad_token: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`importance_many` for one sequence."""
    return importance_many(acts, [tokens], pad_token)[0]


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
    cfg = config
    acts = _Acts(fn, cfg.batch_size)
    norm = normalise or (lambda t: t)
    base_max = float(base_max if base_max is not None else max(max(e.activations) for e in train))
    if base_max <= 0:
        raise ValueError("N2G needs a positive max activation to normalise by")
    model = N2GModel(normalise)
    trace = trace if trace is not None else FitTrace()

    def insert(lines: list[tuple[list[int], list[bool], float]]) -> None:
        for raw, flags, a in lines:
            keys = [(norm(t) if f else WILDCARD, f) for t, f in zip(raw, flags)]
            model.add_line(keys, raw, a)
            trace.lines += 1

    train = [ex for ex in train if ex.pivot is not None and ex.activations[ex.pivot] > 0]
    # Every token of an example at >= pivot_threshold x its max is pruned and fitted as its
    # own pivot (the reference code's token_activation_threshold; 1.0: only the max). With the
    # max only, firing tokens away from it got no line while the lookup baseline knows every
    # firing train token (held-out firing F1 .59 -> .61 with 0.5, SmolLM2, 28 neurons).
    train = [Example(ex.tokens, ex.activations, p) for ex in train for p in pivots(ex, cfg)]
    # Each stage runs for all examples at once: few, large activation calls.
    pruned = prune_many(acts, train, cfg)
    # The pruned prompt goes on past the pivot (reference: up to 5 tokens of its sentence), so
    # firing tokens just after the pivot get lines too, with the pivot's context before them.
    prompts = [(tokens + post_context(ex, cfg.post_context, sentence_end), len(tokens) - 1)
               for ex, (tokens, _, _) in zip(train, pruned)]
    # Rescale the pruned context to the full context's pivot activation (reference code's
    # scale_factor), then normalise by the neuron's max. A failed prune (only when the pivot
    # lies beyond max_context) must not blow it up.
    scales = [(min(full / pruned_act, 1.0 / cfg.prune_threshold) if pruned_act > 0 else 1.0) / base_max
              for _, full, pruned_act in pruned]
    if any(len(t) > piv + 1 for t, piv in prompts):
        # Post-context tokens after the last one that fires get no line: masking them (the
        # cost grows with the square of the length) is skipped.
        bases = acts([t for t, _ in prompts])
        prompts = [(t[: max([piv] + [i for i, a in enumerate(_scaled(b, piv, sc, base_max, cfg))
                                     if i > piv and a > cfg.activation_threshold]) + 1], piv)
                   for (t, piv), b, sc in zip(prompts, bases, scales)]
    imps = importance_many(acts, [p for p, _ in prompts], pad_token)
    jobs = []  # (tokens, pivot, scale, base activations, importance, important sets) per example
    for (tokens, piv), scale, (base, imp) in zip(prompts, scales, imps):
        trace.pruned_lengths.append(piv + 1)
        # Labels are the prompt's own (pivot rescaled). Gating them by the training text's
        # activation at the same positions (a token firing only in the cut-down prompt gets no
        # line) cost held-out recall: firing F1 .665 -> .660, 70 neurons, SmolLM2.
        insert(_lines(tokens, _scaled(base, piv, scale, base_max, cfg), imp, cfg))
        important_sets = {i: {j for j in range(i + 1) if imp[j, i] > cfg.importance_threshold}
                          for i in range(len(tokens))}
        jobs.append((tokens, piv, scale, base, imp, important_sets))
    if substitutes is None or cfg.n_substitutes <= 0:
        return _finish(model, cfg)
    # Augment: substitute the tokens important for the pivot (most important first); tokens
    # after the pivot cannot change it. One substitute call for all prompts.
    asked = [(e, sorted((j for j in range(piv + 1) if imp[j, piv] > cfg.importance_threshold),
                        key=lambda j: -imp[j, piv])[: cfg.max_augment_positions])
             for e, (tokens, piv, _scale, base, imp, _sets) in enumerate(jobs) if base[piv] > 0]
    asked = [(e, positions) for e, positions in asked if positions]
    cands = substitutes([jobs[e][0] for e, _ in asked], [positions for _, positions in asked]) if asked else []
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
        return _finish(model, cfg)
    trace.variants_tried += len(variants)
    res = acts([v for _, v in variants])
    kept = [(e, v, a) for (e, v), a in zip(variants, res)
            if a[jobs[e][1]] >= cfg.augment_threshold * jobs[e][3][jobs[e][1]]]
    trace.variants_kept += len(kept)
    if cfg.reimportance_augmented:
        vimps = importance_many(acts, [v for _, v, _ in kept], pad_token)
    else:
        # Cheaper: reuse the original's importance (same positions, one token changed).
        vimps = [(a, jobs[e][4]) for e, _, a in kept]
    for (e, v, _), (vbase, vimp) in zip(kept, vimps):
        insert(_lines(v, _scaled(vbase, jobs[e][1], jobs[e][2], base_max, cfg), vimp, cfg, forced=jobs[e][5]))
    return _finish(model, cfg)


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
    if not examples:
        raise ValueError("N2G needs at least one example")
    train_idx, test_idx = split_examples(examples, config.train_fraction, config.seed)
    train = [examples[i] for i in train_idx]
    test = [examples[i] for i in test_idx]
    # Normalise by the neuron's largest activation over all its top examples (the reference
    # code uses the dataset max; the top example holds it).
    base_max = max(max(e.activations) for e in examples)
    trace = FitTrace()
    model = fit_n2g(fn, train, pad_token=pad_token, base_max=base_max, substitutes=substitutes,
                    normalise=normalise, sentence_end=sentence_end, config=config, trace=trace)
    scores = evaluate(model, test, base_max, config.fire_threshold)
    lookup = TokenLookup.fit((e.tokens, np.asarray(e.activations) / base_max) for e in train)
    true = np.concatenate([np.asarray(e.activations) / base_max for e in test]) if test else np.zeros(0)
    pred = np.concatenate([lookup.predict(e.tokens) for e in test]) if test else np.zeros(0)
    baseline = classification_scores(true, pred, config.fire_threshold)
    return NeuronResult(model, scores, baseline, train_idx, test_idx, base_max, trace)


# ----------------------------------------------------------------------------------------
# substitutes and token normalisation for real models
# ----------------------------------------------------------------------------------------
def token_substitutes(per_token: Callable[[int], Sequence[int]]) -> SubstituteFn:
    """A :data:`SubstituteFn` from a context-free source: the same candidates for a token
    wherever it stands (e.g. :func:`embedding_neighbours`).

        >>> token_substitutes({5: [6, 7]}.get)([[1, 5], [5]], [[1], [0]])
        [[[6, 7]], [[6, 7]]]
    """
    def subs(prompts: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]) -> list[list[list[int]]]:
        return [[list(per_token(int(p[j])) or []) for j in js] for p, js in zip(prompts, positions)]

    return subs


def combined_substitutes(*sources: SubstituteFn) -> SubstituteFn:
    """Several sources' candidates for each position, taken in turns (first of each, then
    second of each, ...), without repeats.

        >>> a, b = token_substitutes({5: [6, 7]}.get), token_substitutes({5: [7, 8]}.get)
        >>> combined_substitutes(a, b)([[5]], [[0]])
        [[[6, 7, 8]]]
    """
    def subs(prompts: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]) -> list[list[list[int]]]:
        got = [src(prompts, positions) for src in sources]
        out = []
        for i, js in enumerate(positions):
            row = []
            for slot in range(len(js)):
                lists, merged = [g[i][slot] for g in got], []
                for rank in range(max((len(c) for c in lists), default=0)):
                    for c in lists:
                        if rank < len(c) and c[rank] not in merged:
                            merged.append(c[rank])
                row.append(merged)
            out.append(row)
        return out

    return subs


def _top_ids(logits: Any, n: int) -> np.ndarray:
    """Indices of the n largest logits along the last axis, largest first ([..., n])."""
    if hasattr(logits, "topk"):  # a torch tensor: select there, not over a numpy copy of [B, T, V]
        return logits.topk(n, dim=-1).indices.cpu().numpy()
    a = np.asarray(logits, dtype=np.float32)
    top = np.argpartition(-a, n - 1, axis=-1)[..., :n]
    order = np.argsort(-np.take_along_axis(a, top, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(top, order, axis=-1)


def unit_rows(W_E: Any) -> np.ndarray:
    """An embedding matrix (torch or numpy) as float32 numpy rows of unit length: cosine
    similarity is then a dot product."""
    W = np.asarray(W_E.detach().float().cpu().numpy() if hasattr(W_E, "detach") else W_E, dtype=np.float32)
    return W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-8)


def lm_substitutes(logits_fn: Callable[[list[list[int]]], Any], k: int = 5, *, exclude: Iterable[int] = (),
                   prefix: Sequence[int] = (), fallback: Callable[[int], Sequence[int]] | None = None,
                   embeddings: Any = None, pool: int = 0, pad: int = 0, batch_size: int = 16) -> SubstituteFn:
    """Substitutes from the model's own next-token prediction: at position j, the k tokens the
    model finds likeliest after ``prefix + tokens[:j]``, the original token and ``exclude``
    (special tokens) left out.

    The causal analogue of the papers' masked-LM (BERT) substitutes: candidates that fit the
    context, of any word, where embedding neighbours are mostly the token's own case and space
    variants. It sees only the left context (a masked LM also sees the right one). One forward
    pass per prompt serves all its positions.

    With ``embeddings`` (``W_E``), the k are the model's ``pool`` likeliest tokens nearest the
    original token (cosine): words that fit the left context *and* resemble the one they
    replace, as a masked LM's candidates do where it also sees the right context. (Left
    context alone proposes any word that may come next: " the" in "girded me with strength".)
    ``pool`` = k gives the plain top k; a pool as large as the vocabulary, embedding neighbours.

    ``logits_fn`` maps a batch of equal-length token
    lists to next-token logits [B, T, V] (row t predicts token t + 1; numpy or torch); give it
    the ``prefix`` the neuron's activation function puts in front (a document start), else
    position 0 has no prediction and takes ``fallback(token)`` (or nothing).

        >>> # a toy LM over 5 tokens: after t it expects t + 1, then t + 2, ... (mod 5)
        >>> logits = lambda seqs: np.array([[[-((v - t - 1) % 5) for v in range(5)] for t in s] for s in seqs])
        >>> subs = lm_substitutes(logits, k=2)
        >>> subs([[0, 1, 4]], [[1, 2, 0]])  # after 0: 1 (the token itself, left out), 2, 3
        [[[2, 3], [2, 3], []]]
        >>> lm_substitutes(logits, k=2, prefix=[3])([[0, 1]], [[0]])  # after the prefix 3: 4, (0), 1
        [[[4, 1]]]
        >>> W = np.array([[1, 0], [1, 0], [0, 1], [1, 0.1], [1, 0.2]])  # 3 and 4 look like 1
        >>> lm_substitutes(logits, k=2, embeddings=W, pool=3)([[0, 1]], [[1]])  # of 2, 3, 4: nearest 1
        [[[3, 4]]]
    """
    banned = {int(t) for t in exclude}
    k = max(0, int(k))
    want = max(k, int(pool)) + 1 + len(banned)  # enough that k remain after the original and the banned
    unit = None if embeddings is None else unit_rows(embeddings)

    def pick(ranked: np.ndarray, orig: int) -> list[int]:
        cands = [int(t) for t in ranked if int(t) != orig and int(t) not in banned][: max(k, int(pool))]
        if unit is not None and cands:
            sims = unit[cands] @ unit[orig]
            cands = [cands[n] for n in np.argsort(-sims, kind="stable")]
        return cands[:k]

    def subs(prompts: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]) -> list[list[list[int]]]:
        out: list[list[list[int]]] = [[[] for _ in js] for js in positions]
        # Each prompt is run up to its last asked position (the rest cannot change a prediction).
        need = [(i, list(prefix) + [int(t) for t in p[: max(j for j in js)]])
                for i, (p, js) in enumerate(zip(prompts, positions)) if js and k and (prefix or max(js) > 0)]
        need.sort(key=lambda x: len(x[1]))  # similar lengths together: little padding
        for s in range(0, len(need), batch_size):
            chunk = need[s:s + batch_size]
            T = max(len(seq) for _, seq in chunk)
            logits = logits_fn([seq + [pad] * (T - len(seq)) for _, seq in chunk])
            top = _top_ids(logits, min(want, int(logits.shape[-1])))
            for row, (i, _) in enumerate(chunk):
                for slot, j in enumerate(positions[i]):
                    at = len(prefix) + j - 1
                    if at < 0:
                        continue
                    out[i][slot] = pick(top[row, at], int(prompts[i][j]))
        if fallback is not None:
            for i, js in enumerate(positions):
                for slot, j in enumerate(js):
                    if len(prefix) + j == 0:
                        out[i][slot] = list(fallback(int(prompts[i][j])))[:k]
        return out

    return subs


def embedding_neighbours(W_E: Any, k: int = 5, exclude: Iterable[int] = (),
                         distinct: Callable[[int], Hashable] | None = None, variants: int = 0,
                         pool: int = 8) -> Callable[[int], list[int]]:
    """Substitutes from the model's own token embeddings: the k nearest tokens by cosine.

    Offline stand-in for the papers' masked-LM (BERT) substitutes. A token's nearest
    neighbours are mostly its own case and space variants (" He": "He", " he", ...); with
    ``distinct`` (e.g. :func:`text_normaliser`) the k nearest *different* words are returned,
    one token each, searched among the ``pool`` x k nearest tokens, as a masked LM proposes k
    different words; ``variants`` of the token's own word (its nearest tokens with the same
    ``distinct`` key) come first, where trie keys are exact tokens and the model must say
    whether " he" does what " He" does.

        >>> W = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> embedding_neighbours(W, k=1)(0)
        [1]
        >>> embedding_neighbours(W, k=1, distinct=lambda t: t // 2)(0)  # 1 is a variant of 0
        [2]
        >>> embedding_neighbours(W, k=1, distinct=lambda t: t // 2, variants=1)(0)
        [1, 2]
    """
    W = unit_rows(W_E)
    k = max(0, min(int(k), W.shape[0] - 2))
    reach = k if distinct is None else min(k * pool, W.shape[0] - 1)
    banned = np.array(sorted(set(int(e) for e in exclude)), dtype=int)
    cache: dict[int, list[int]] = {}

    def subs(tok: int) -> list[int]:
        if tok not in cache:
            sims = W @ W[tok]
            sims[tok] = -np.inf
            if banned.size:
                sims[banned] = -np.inf
            top = np.argpartition(-sims, reach - 1)[:reach] if reach > 0 else np.zeros(0, dtype=int)
            near = [int(t) for t in top[np.argsort(-sims[top])]]
            if distinct is not None:
                own, seen, words = distinct(tok), {distinct(tok)}, []
                for t in near:
                    if distinct(t) not in seen:
                        seen.add(distinct(t))
                        words.append(t)
                same = [t for t in near if distinct(t) == own][:variants]
                near = same + words[:k]
            cache[tok] = near[: k + (variants if distinct is not None else 0)]
        return cache[tok]

    return subs


def text_normaliser(decode: Callable[[int], str]) -> Callable[[int], Hashable]:
    """Token key as the reference code normalises tokens: title-case words lower-cased,
    surrounding whitespace stripped from tokens with letters ("The", " the" -> "the")."""
    cache: dict[int, str] = {}

    def norm(tok: int) -> Hashable:
        if tok not in cache:
            t = decode(tok)
            t = t.lower() if t.strip().istitle() and len(t.strip()) > 1 else t
            cache[tok] = t.strip() if len(t.strip()) > 1 and any(c.isalpha() for c in t) else t
        return cache[tok]

    return norm


def sentence_ends(decode: Callable[[int], str]) -> Callable[[int], bool]:
    """Whether a token ends a sentence, as the reference code splits sentences (on '.', '!' or
    a newline inside the token text).

        >>> [sentence_ends({1: " end.", 2: " go"}.__getitem__)(t) for t in (1, 2)]
        [True, False]
    """
    cache: dict[int, bool] = {}

    def ends(tok: int) -> bool:
        if tok not in cache:
            cache[tok] = any(c in decode(tok) for c in ".!\n")
        return cache[tok]

    return ends


def neuron_fn(layer_fn: Callable[[list[list[int]]], Any], index: int) -> ActivationFn:
    """One neuron's activation function from a layer's ([B, T, d_mlp]) one."""
    def fn(seqs: list[list[int]]) -> np.ndarray:
        out = layer_fn(seqs)
        out = out.detach().float().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
        return out[:, :, index]
    return fn


# ----------------------------------------------------------------------------------------
# storage
# ----------------------------------------------------------------------------------------
def pattern_rows(model_name: str, layer: int, index: int, m: N2GModel,
                 decode: Callable[[int], str] | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(upsert_pattern_nodes rows, upsert_pattern_edges rows, upsert_pattern_matches rows)."""
    decode = decode or str
    nk = neuron_key(model_name, layer, index)
    nodes = [{
        "key": pattern_key(model_name, layer, index, n.id), "neuron": nk,
        "token": None if n.key is WILDCARD else decode(min(n.token_ids)),
        "token_key": None if n.key is WILDCARD else token_key(model_name, min(n.token_ids)),
        "depth": n.depth, "role": n.role, "activation": n.end, "is_end": n.end is not None,
    } for n in m.nodes]
    edges = [{"src": pattern_key(model_name, layer, index, a), "dst": pattern_key(model_name, layer, index, b)}
             for a, b in m.edges()]
    matches = [{"pattern": pattern_key(model_name, layer, index, n.id), "token": token_key(model_name, t),
                "role": n.role} for n in m.nodes if n.role != "ignore" for t in sorted(n.token_ids)]
    return nodes, edges, matches


async def write_neuron(store: Any, model_name: str, layer: int, index: int, result: NeuronResult,
                       decode: Callable[[int], str] | None = None) -> None:
    """Replace one neuron's pattern graph and scores in the store (idempotent)."""
    decode = decode or str
    nk = neuron_key(model_name, layer, index)
    nodes, edges, matches = pattern_rows(model_name, layer, index, result.model, decode)
    await store.write("delete_pattern_nodes", [{"neuron": nk}])
    tokens = sorted({t for n in result.model.nodes if n.role != "ignore" for t in n.token_ids})
    await store.write("upsert_tokens", [{"key": token_key(model_name, t), "model": model_name, "id": t,
                                         "text": decode(t)} for t in tokens])
    await store.write("upsert_pattern_nodes", nodes)
    await store.write("upsert_pattern_edges", edges)
    await store.write("upsert_pattern_matches", matches)
    await store.write("set_neuron_props", [{"key": nk, "props": result.props(decode)}])


def similar_pairs(token_sets: Mapping[str, Mapping[str, set]], threshold: float = 0.5) -> list[dict]:
    """Symmetric similarity of neurons' N2G token sets: Jaccard of the role-tagged sets
    {("activating", t)} | {("important", t)}. Candidate pairs come from an inverted index
    token -> neurons, so only pairs that share a token are compared (no all-pairs loop).
    DeepDecipher divides the overlap by a length that is not the pair's own, so its scores
    are asymmetric; here sim(a, b) == sim(b, a), stored once with src < dst.
    Returns upsert_similar rows {src, dst, weight}.

        >>> similar_pairs({"m/0/1": {"activating": {1}, "important": {2}},
        ...                "m/0/2": {"activating": {1}, "important": {2, 3}}}, 0.5)
        [{'src': 'm/0/1', 'dst': 'm/0/2', 'weight': 0.6666666666666666}]
    """
    tagged = {k: {(role, t) for role, toks in sets.items() for t in toks} for k, sets in token_sets.items()}
    index: dict[tuple, list[str]] = defaultdict(list)
    for k, s in tagged.items():
        for item in s:
            index[item].append(k)
    shared: dict[tuple[str, str], int] = defaultdict(int)
    for neurons in index.values():
        neurons = sorted(neurons)
        for i, a in enumerate(neurons):
            for b in neurons[i + 1:]:
                shared[(a, b)] += 1
    rows = []
    for (a, b), inter in shared.items():
        w = inter / (len(tagged[a]) + len(tagged[b]) - inter)
        if w >= threshold:
            rows.append({"src": a, "dst": b, "weight": w})
    rows.sort(key=lambda r: (r["src"], r["dst"]))
    return rows


async def update_similar(store: Any, model_name: str, threshold: float = 0.5) -> int:
    """Recompute the model's SIMILAR {kind:'n2g'} edges from the stored pattern token sets."""
    rows = await store.query("n2g_token_sets", model=model_name)
    sets: dict[str, dict[str, set]] = defaultdict(lambda: {"activating": set(), "important": set()})
    for r in rows:
        sets[r["neuron"]][r["role"]].add(r["token"])
    pairs = similar_pairs(sets, threshold)
    await store.write("delete_similar_n2g", [{"model": model_name}])
    return await store.write("upsert_similar", pairs)


def examples_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[int, int], list[Example]]:
    """Group n2g_top_examples_of rows into examples per (layer, index); token ids are read from
    ``token_ids`` when the example stores them, else from ``tokens`` if those are ints."""
    out: dict[tuple[int, int], list[Example]] = defaultdict(list)
    for r in rows:
        toks = r.get("token_ids") or r.get("tokens") or []
        if toks and not all(isinstance(t, int) for t in toks):
            raise ValueError(f"example {r.get('example')!r} has token strings, not ids: N2G needs token ids")
        out[(int(r["layer"]), int(r["index"]))].append(Example(list(toks), list(r["activations"]), r.get("pivot")))
    return dict(out)


async def build_n2g(store: Any, model_name: str, activation_fn: Callable[[int, int], ActivationFn], *,
                    pad_token: int,
                    examples: Mapping[tuple[int, int], Sequence[Example]] | None = None,
                    neurons: Iterable[tuple[int, int]] | None = None, layers: Iterable[int] | None = None,
                    substitutes: SubstituteFn | None = None,
                    decode: Callable[[int], str] | None = None,
                    normalise: Callable[[int], Hashable] | None = None,
                    config: N2GConfig = N2GConfig(), top_k: int = 20, force: bool = False,
                    similar_threshold: float | None = 0.5, progress: bool = True) -> dict[str, Any]:
    """Fit, score and store N2G for neurons of a model; resumable.

    ``activation_fn(layer, index)`` returns the neuron's :data:`ActivationFn`. ``examples``
    maps (layer, index) to top examples; without it the neuron's stored ``ACTIVATES_ON
    {kind:'max'}`` examples are read (``top_k`` of them). Neurons that already have N2G
    results are skipped unless ``force``. Trie keys are exact token ids unless ``normalise``
    is given (e.g. :func:`text_normaliser`, the reference code's case and space folding). Returns a
    summary {done, skipped, failed, similar}.

        summary = await build_n2g(store, "smollm2-135m", lambda l, i: neuron_fn(layer_fns[l], i),
                                  pad_token=0, layers=[0, 1], substitutes=subs, decode=decode)
    """
    from neurograph.progress import track

    # Exact tokens, not the reference code's case folding: " And" and " and" are one node
    # there, though a neuron may fire on one only; substitution with case variants lets the
    # model itself say where they agree. Held-out firing F1 on SmolLM2, 70 neurons per sample:
    # .658 -> .665 (seed 0, the largest per-neuron losses to the lookup gone), .701 -> .697
    # (seed 1): about even overall.
    sentence_end = sentence_ends(decode) if decode is not None else None
    stored = {(r["layer"], r["index"]): bool(r["done"]) for r in await store.query("n2g_neurons", model=model_name)}
    # Without ``examples``, the candidates are the model's neurons and only the ones fitted
    # get their examples read (a whole model's top examples run to gigabytes).
    wanted = set(examples) if examples is not None else set(stored)
    if neurons is not None:
        asked = {(int(l), int(i)) for l, i in neurons}
        wanted = wanted & asked if examples is not None else asked
    if layers is not None:
        wanted = {k for k in wanted if k[0] in set(layers)}
    missing = sorted(k for k in wanted if k not in stored)
    if missing:
        raise NotFound(f"{len(missing)} neurons of {model_name!r} are not in the graph "
                       f"(first: {neuron_key(model_name, *missing[0])}); load the model's neurons first")
    todo = sorted(k for k in wanted if force or not stored[k])
    if examples is None:
        examples = {}
        for s in range(0, len(todo), 256):  # a bounded read per query
            keys = [neuron_key(model_name, l, i) for l, i in todo[s:s + 256]]
            examples.update(examples_from_rows(await store.query("n2g_top_examples_of", keys=keys, top_k=top_k)))
        # Neurons without stored examples have nothing to fit: they are not candidates.
        wanted = {k for k in wanted if k in examples or (not force and stored[k])}
        todo = [k for k in todo if k in examples]
    summary: dict[str, Any] = {"done": 0, "skipped": len(wanted) - len(todo), "failed": [], "similar": 0}
    for layer, index in track(todo, f"N2G {model_name}", enabled=progress):
        exs = [e for e in examples[(layer, index)] if e.tokens][:top_k]
        try:
            result = run_neuron(activation_fn(layer, index), exs, pad_token=pad_token, substitutes=substitutes,
                                normalise=normalise, sentence_end=sentence_end, config=config)
        except ValueError as exc:  # no positive activation, no examples: record and go on
            log.warning("N2G %s/%d/%d skipped: %s", model_name, layer, index, exc)
            summary["failed"].append((layer, index, str(exc)))
            continue
        await write_neuron(store, model_name, layer, index, result, decode)
        summary["done"] += 1
    if similar_threshold is not None:
        summary["similar"] = await update_similar(store, model_name, similar_threshold)
    return summary
