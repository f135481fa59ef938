"""N2G for many neurons at once: one forward pass serves every neuron of a layer (:func:`run_layer`),
or of every layer it reaches (:func:`run_model`).

A layer's forward pass gives every neuron of the layer, so the fits of many neurons run in
lockstep (:func:`run_layer`): each fit is the same request generator as the per-neuron path
(:func:`loaders.n2g.fit.run_steps`), and each round the activation requests of all of them are
pooled into large forward passes, each row read at the column of the neuron that asked for it.
Before running, the pooled sequences are reduced to the ones that must run:

* identical sequences (two neurons, or two stages, asking for the same text) run once;
* a sequence that is a prefix of another one is read from the longer one's positions (a causal
  model's position t sees only tokens up to t): a pivot's pruned prior is a prefix of its
  unpruned prompt, a trimmed prompt of the untrimmed one.

Substitute requests of all fits are pooled into one call too. The method is unchanged, so the
pattern graphs equal the per-neuron path's up to floating-point rounding of different batch
shapes (tests: exactly equal on the tiny model).

    results = run_layer(layer_fn, {17: examples_17, 42: examples_42}, pad_token=mask, substitutes=subs)
    results[17].model.token_sets()
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from .fit import Ask, Example, N2GConfig, Need, NeuronResult, Steps, SubstituteFn, run_steps

LayerFn = Callable[[list[list[int]]], Any]
"""Token-id sequences -> the layer's activations [B, T, d_mlp] (numpy or torch; right-padded).
A model-wide function (for :func:`run_model`) carries ``packed_layers(rows, want)`` instead:
packed token trees and {layer: [neuron columns]} -> {layer: [R, n, len(columns)]}, one forward
pass read at every asked layer and stopped after the deepest."""


@dataclass
class LayerStats:
    """What a batched pass did: sequences and tokens asked for by the fits, the ones that ran
    after merging duplicates and prefixes, forward calls and time split by kind."""

    neurons: int = 0
    rounds: int = 0
    seqs_asked: int = 0
    tokens_asked: int = 0
    seqs_run: int = 0
    tokens_run: int = 0
    forwards: int = 0
    forward_s: float = 0.0
    substitute_s: float = 0.0
    failed: dict[Hashable, str] = field(default_factory=dict)
    per_round: list[tuple[int, int]] = field(default_factory=list)  # (tokens asked, tokens run) per round
    by_stage: dict[str, list[float]] = field(default_factory=dict)  # stage -> [tokens asked, tokens run, forward s]

    def add(self, other: "LayerStats") -> None:
        for k in ("neurons", "rounds", "seqs_asked", "tokens_asked", "seqs_run", "tokens_run", "forwards"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.forward_s += other.forward_s
        self.substitute_s += other.substitute_s
        self.failed.update(other.failed)
        self.per_round += other.per_round
        for stage, v in other.by_stage.items():
            self.by_stage[stage] = [a + b for a, b in zip(self.by_stage.get(stage, [0, 0, 0.0]), v)]


def _cover(seqs: Sequence[tuple[int, ...]]) -> list[tuple[int, int]]:
    """For each sequence, (the sequence that runs for it, its length): itself, or a longer
    sequence it is a prefix of. Longest first, through a token trie.

        >>> _cover([(1, 2), (1, 2, 3), (4,), (1, 3)])
        [(1, 2), (1, 3), (2, 1), (3, 2)]
    """
    order = sorted(range(len(seqs)), key=lambda u: -len(seqs[u]))
    root: dict = {}
    owner: dict[int, int] = {}  # id(node) -> the sequence that made it
    out: list[tuple[int, int]] = [(u, len(s)) for u, s in enumerate(seqs)]
    for u in order:
        node, made = root, False
        for t in seqs[u]:
            nxt = node.get(t)
            if nxt is None:
                nxt = node[t] = {}
                owner[id(nxt)] = u
                made = True
            node = nxt
        if not made and seqs[u]:
            out[u] = (owner[id(node)], len(seqs[u]))
    return out


def pack(seqs: Sequence[tuple[int, ...]], max_row: int = 256) -> tuple[list[tuple[list[int], list[int], list[int]]],
                                                                       list[tuple[int, list[int]]]]:
    """Pack sequences into rows of a token tree: each row holds the union of its sequences'
    token paths, a shared prefix once (a variant that differs from position j on adds only its
    tokens from j). Returns rows (tokens, parent slot or -1, depth) and, per sequence, (row,
    the slots of its tokens). A token attends to its ancestors in the tree: the model sees
    exactly each sequence (see :func:`tree_mask`). Rows hold at most ``max_row`` tokens unless a
    single sequence is longer.

        >>> rows, where = pack([(1, 2, 3), (1, 2, 4), (5,)])
        >>> rows
        [([1, 2, 3, 4, 5], [-1, 0, 1, 1, -1], [0, 1, 2, 2, 0])]
        >>> where
        [(0, [0, 1, 2]), (0, [0, 1, 3]), (0, [4])]
    """
    order = sorted(range(len(seqs)), key=lambda u: seqs[u])  # sharing neighbours side by side
    rows: list[tuple[list[int], list[int], list[int]]] = []
    where: list[tuple[int, list[int]]] = [(0, [])] * len(seqs)
    slot: dict[tuple[int, ...], int] = {}  # prefix -> its slot in the open row
    toks: list[int] = []
    parents: list[int] = []
    depth: list[int] = []

    def flush() -> None:
        nonlocal toks, parents, depth, slot
        if toks:
            rows.append((toks, parents, depth))
        toks, parents, depth, slot = [], [], [], {}

    for u in order:
        s = seqs[u]
        shared = 0
        while shared < len(s) and s[: shared + 1] in slot:
            shared += 1
        if toks and len(toks) + len(s) - shared > max_row:
            flush()
            shared = 0
        path = [slot[s[: d + 1]] for d in range(shared)]
        for d in range(shared, len(s)):
            slot[s[: d + 1]] = len(toks)
            toks.append(int(s[d]))
            parents.append(path[-1] if path else -1)
            depth.append(d)
            path.append(len(toks) - 1)
        where[u] = (len(rows), path)
    flush()
    return rows, where


def tree_mask(parents: Sequence[int]) -> np.ndarray:
    """[n, n] bool: slot a may attend to slot b (b is a or an ancestor of a).

        >>> tree_mask([-1, 0, 0]).astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    n = len(parents)
    m = np.zeros((n, n), dtype=bool)
    for a, p in enumerate(parents):
        if p >= 0:
            m[a] = m[p]
        m[a, a] = True
    return m


def packed_inputs(rows: Sequence[tuple[list[int], list[int], list[int]]], prefix: Sequence[int] = (), pad: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs for packed rows (:func:`pack`), each after ``prefix`` (which every token sees):
    token ids [R, n], position ids [R, n] and the attention mask [R, n, n] (bool, True: may
    attend). Padding slots see only themselves. The caller's outputs for a row's slots start
    at ``len(prefix)``.

        >>> ids, pos, m = packed_inputs([([7, 8, 9], [-1, 0, 0], [0, 1, 1])], prefix=[1])
        >>> ids.tolist(), pos.tolist(), m[0].astype(int).tolist()
        ([[1, 7, 8, 9]], [[0, 1, 2, 2]], [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 1]])
    """
    P = len(prefix)
    n = P + max(len(r[0]) for r in rows)
    ids = np.full((len(rows), n), pad, dtype=np.int64)
    pos = np.zeros((len(rows), n), dtype=np.int64)
    mask = np.zeros((len(rows), n, n), dtype=bool)
    mask[:, np.arange(n), np.arange(n)] = True
    for b, (toks, parents, depth) in enumerate(rows):
        k = len(toks)
        ids[b, :P] = list(prefix)
        ids[b, P:P + k] = toks
        pos[b, :P] = np.arange(P)
        pos[b, P:P + k] = np.asarray(depth) + P
        mask[b, :P, :P] = np.tril(np.ones((P, P), dtype=bool))
        mask[b, P:P + k, :P] = True
        mask[b, P:P + k, P:P + k] = tree_mask(parents)
    return ids, pos, mask


def _as_numpy(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):
        return out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def answer_needs(layer_fn: LayerFn, needs: Mapping[Hashable, tuple[int, Need]], *, batch_size: int = 64,
                 batch_tokens: int = 4096, stats: LayerStats | None = None) -> dict[Hashable, list[np.ndarray]]:
    """Answer many fits' activation requests with shared forward passes. ``needs`` maps a fit's
    id to (its neuron's column, its :class:`Need`); the answer per fit is one float array per
    sequence, cut to its length, as the per-neuron driver gives."""
    stats = stats if stats is not None else LayerStats()
    asked0, run0 = stats.tokens_asked, stats.tokens_run
    uniq: dict[tuple[int, ...], int] = {}
    refs: dict[Hashable, list[int]] = {}
    for fid, (_col, need) in needs.items():
        refs[fid] = [uniq.setdefault(tuple(int(t) for t in s), len(uniq)) for s in need.seqs]
        stats.seqs_asked += len(need.seqs)
        stats.tokens_asked += sum(len(s) for s in need.seqs)
    seqs = list(uniq)
    cover = _cover(seqs)
    cols: dict[int, set[Hashable]] = {}
    for fid, (col, _need) in needs.items():
        for u in refs[fid]:
            cols.setdefault(cover[u][0], set()).add(col)
    got: dict[int, tuple[dict[Hashable, int], np.ndarray]] = {}
    packed = getattr(layer_fn, "packed", None)
    packed_layers = getattr(layer_fn, "packed_layers", None)
    if packed_layers is not None:  # columns are (layer, neuron): every layer from one pass
        _run_packed(packed_layers, seqs, cols, got, batch_size, batch_tokens, stats, layered=True)
        cols = {}
    elif packed is not None:
        try:
            _run_packed(packed, seqs, cols, got, batch_size, batch_tokens, stats)
            cols = {}
        except NotImplementedError:  # this model cannot run packed trees: plain batches
            got.clear()
    runs = list(cols)
    for ks in row_chunks([len(seqs[r]) for r in runs], batch_size, batch_tokens):
        chunk = [runs[k] for k in ks]
        t0 = time.perf_counter()
        out = _as_numpy(layer_fn([list(seqs[r]) for r in chunk]))
        stats.forward_s += time.perf_counter() - t0
        stats.forwards += 1
        stats.seqs_run += len(chunk)
        stats.tokens_run += sum(len(seqs[r]) for r in chunk)
        for j, r in enumerate(chunk):
            c = sorted(cols[r])
            got[r] = ({n: k for k, n in enumerate(c)}, out[j, : len(seqs[r])][:, c])
    stats.per_round.append((stats.tokens_asked - asked0, stats.tokens_run - run0))
    answers: dict[Hashable, list[np.ndarray]] = {}
    for fid, (col, _need) in needs.items():
        rows = []
        for u in refs[fid]:
            r, n = cover[u]
            where, vals = got[r]
            rows.append(np.asarray(vals[:n, where[col]], dtype=float))
        answers[fid] = rows
    return answers


def row_chunks(lengths: Sequence[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Rows of these lengths (packed rows, :func:`pack`, or plain sequences) grouped into forward
    calls, shortest first (similar lengths together: little padding): at most ``batch_size`` rows
    and ``batch_tokens`` padded tokens a call (a longer row runs alone). Indices into ``lengths``.

        >>> row_chunks([3, 5, 1], 8, 10)
        [[2, 0], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    out, at = [], 0
    while at < len(order):
        chunk = [order[at]]
        while (at + len(chunk) < len(order) and len(chunk) < batch_size
               and (len(chunk) + 1) * lengths[order[at + len(chunk)]] <= batch_tokens):
            chunk.append(order[at + len(chunk)])
        at += len(chunk)
        out.append(chunk)
    return out


def _run_packed(packed: Callable[..., Any], seqs: list[tuple[int, ...]], cols: dict[int, set[Hashable]], got: dict,
                batch_size: int, batch_tokens: int, stats: LayerStats, layered: bool = False) -> None:
    """Run the sequences that must run as packed token trees (:func:`pack`) and keep each
    sequence's needed columns: ``packed(rows)`` gives [R, n, d_mlp] per row slot; with
    ``layered``, columns are (layer, neuron) and ``packed(rows, want)`` gives {layer: [R, n,
    len(want[layer])]} for the union of the chunk's columns, so a pass serves every layer."""
    if layered:
        # A pass runs up to the deepest layer of its chunk: sequences are packed with the ones
        # that stop at the same layer, or a layer-0 variant would pay for 30 layers.
        depth: dict[int, list[int]] = {}
        for r, c in cols.items():
            depth.setdefault(max(layer for layer, _ in c), []).append(r)
        if len(depth) > 1:
            for runs_at in depth.values():
                _run_packed(packed, seqs, {r: cols[r] for r in runs_at}, got, batch_size, batch_tokens, stats, True)
            return
    runs = list(cols)
    rows, where = pack([seqs[r] for r in runs], max_row=max(32, batch_tokens // 16))
    in_row: dict[int, list[int]] = {}
    for q, (k, _path) in enumerate(where):
        in_row.setdefault(k, []).append(q)
    for chunk in row_chunks([len(r[0]) for r in rows], batch_size, batch_tokens):
        t0 = time.perf_counter()
        if layered:
            union: dict[int, set[int]] = {}
            for k in chunk:
                for q in in_row[k]:
                    for layer, i in cols[runs[q]]:
                        union.setdefault(layer, set()).add(i)
            want = {layer: sorted(v) for layer, v in sorted(union.items())}
            out = {layer: _as_numpy(a) for layer, a in packed([rows[k] for k in chunk], want).items()}
            slot = {(layer, i): q for layer, v in want.items() for q, i in enumerate(v)}
        else:
            out = _as_numpy(packed([rows[k] for k in chunk]))
        stats.forward_s += time.perf_counter() - t0
        stats.forwards += 1
        stats.tokens_run += sum(len(rows[k][0]) for k in chunk)
        for j, k in enumerate(chunk):
            for q in in_row[k]:
                r, path = runs[q], where[q][1]
                c = sorted(cols[r])
                if layered:
                    vals = np.stack([out[layer][j, path, slot[(layer, i)]] for layer, i in c], axis=1)
                else:
                    vals = out[j][path][:, c]
                got[r] = ({key: n for n, key in enumerate(c)}, vals)
    stats.seqs_run += len(runs)


def answer_asks(substitutes: SubstituteFn, asks: Mapping[Hashable, Ask], stats: LayerStats | None = None
                ) -> dict[Hashable, list]:
    """Answer many fits' substitute requests with one call of ``substitutes``."""
    stats = stats if stats is not None else LayerStats()
    prompts: list[list[int]] = []
    positions: list[list[int]] = []
    spans: dict[Hashable, tuple[int, int]] = {}
    for fid, ask in asks.items():
        spans[fid] = (len(prompts), len(prompts) + len(ask.prompts))
        prompts += ask.prompts
        positions += ask.positions
    t0 = time.perf_counter()
    cands = substitutes(prompts, positions)
    stats.substitute_s += time.perf_counter() - t0
    return {fid: cands[a:b] for fid, (a, b) in spans.items()}


def run_fits(layer_fn: LayerFn, fits: Mapping[Hashable, tuple[int, Steps]], *,
             substitutes: SubstituteFn | None = None, batch_size: int = 64, batch_tokens: int = 4096,
             stats: LayerStats | None = None) -> dict[Hashable, Any]:
    """Run request generators of many fits of one layer in lockstep (``fits``: id -> (neuron
    column, generator)). Returns id -> the generator's return value, or the exception it raised
    (a ValueError for a neuron with nothing to fit)."""
    stats = stats if stats is not None else LayerStats()
    pending: dict[Hashable, Any] = {}
    results: dict[Hashable, Any] = {}
    gens = {fid: g for fid, (_c, g) in fits.items()}
    col = {fid: c for fid, (c, _g) in fits.items()}

    def step(fid: Hashable, answer: Any = None, first: bool = False) -> None:
        try:
            pending[fid] = next(gens[fid]) if first else gens[fid].send(answer)
        except StopIteration as stop:
            pending.pop(fid, None)
            results[fid] = stop.value
        except ValueError as exc:
            pending.pop(fid, None)
            results[fid] = exc

    for fid in gens:
        step(fid, first=True)
    while pending:
        stats.rounds += 1
        needs = {fid: (col[fid], r) for fid, r in pending.items() if isinstance(r, Need)}
        asks = {fid: r for fid, r in pending.items() if isinstance(r, Ask)}
        answers: dict[Hashable, Any] = {}
        # A layer function may run some stages differently (``layer_fn.by_stage``: stage -> layer
        # function, e.g. a lower precision for the many substitution variants).
        by_stage = getattr(layer_fn, "by_stage", None) or {}
        for stage in sorted({r.stage for _, r in needs.values()}):
            group = {fid: (c, r) for fid, (c, r) in needs.items() if r.stage == stage}
            before = (stats.tokens_asked, stats.tokens_run, stats.forward_s)
            answers.update(answer_needs(by_stage.get(stage, layer_fn), group, batch_size=batch_size,
                                        batch_tokens=batch_tokens, stats=stats))
            now = (stats.tokens_asked, stats.tokens_run, stats.forward_s)
            stats.by_stage[stage] = [t + (b - a) for t, a, b in zip(stats.by_stage.get(stage, [0, 0, 0.0]), before, now)]
        if asks:
            if substitutes is None:
                raise ValueError("the fit asked for substitutes but no SubstituteFn was given")
            answers.update(answer_asks(substitutes, asks, stats))
        for fid, ans in answers.items():
            step(fid, ans)
    return results


def run_layer(layer_fn: LayerFn, examples: Mapping[int, Sequence[Example]], *, pad_token: int,
              substitutes: SubstituteFn | None = None, normalise: Callable[[int], Hashable] | None = None,
              sentence_end: Callable[[int], bool] | None = None, config: N2GConfig = N2GConfig(),
              batch_tokens: int = 4096, stats: LayerStats | None = None) -> dict[int, NeuronResult | ValueError]:
    """:func:`loaders.n2g.run_neuron` for many neurons of one layer (``examples``: neuron index
    -> its top examples), their forward passes shared. Returns index -> result, or the
    ValueError of a neuron that has nothing to fit."""
    return _run_many(layer_fn, examples, lambda i: i, pad_token=pad_token, substitutes=substitutes,
                     normalise=normalise, sentence_end=sentence_end, config=config, batch_tokens=batch_tokens,
                     stats=stats)


def run_model(model_fn: LayerFn, examples: Mapping[tuple[int, int], Sequence[Example]], *, pad_token: int,
              substitutes: SubstituteFn | None = None, normalise: Callable[[int], Hashable] | None = None,
              sentence_end: Callable[[int], bool] | None = None, config: N2GConfig = N2GConfig(),
              batch_tokens: int = 4096, stats: LayerStats | None = None
              ) -> dict[tuple[int, int], NeuronResult | ValueError]:
    """:func:`run_layer` across layers (``examples``: (layer, neuron) -> its top examples): one
    forward pass, read at every layer asked (``model_fn.packed_layers``), serves the neurons of
    all of them. Neurons of different layers fire on the same contexts, so their prune,
    masking and substitution variants are the same sequences and run once."""
    if getattr(model_fn, "packed_layers", None) is None:
        raise ValueError("run_model needs a model function with packed_layers(rows, want)")
    return _run_many(model_fn, examples, lambda key: (int(key[0]), int(key[1])), pad_token=pad_token,
                     substitutes=substitutes, normalise=normalise, sentence_end=sentence_end, config=config,
                     batch_tokens=batch_tokens, stats=stats)


def _run_many(fn: LayerFn, examples: Mapping[Hashable, Sequence[Example]], column: Callable[[Any], Hashable], *,
              pad_token: int, substitutes: SubstituteFn | None, normalise: Callable[[int], Hashable] | None,
              sentence_end: Callable[[int], bool] | None, config: N2GConfig, batch_tokens: int,
              stats: LayerStats | None) -> dict[Hashable, Any]:
    """The fits of many neurons in lockstep; ``column(key)``: the key's column in ``fn``'s output."""
    stats = stats if stats is not None else LayerStats()
    fits = {key: (column(key), run_steps(exs, pad_token=pad_token, substitute=substitutes is not None,
                                         normalise=normalise, sentence_end=sentence_end, config=config))
            for key, exs in examples.items()}
    stats.neurons += len(fits)
    out = run_fits(fn, fits, substitutes=substitutes, batch_size=config.batch_size, batch_tokens=batch_tokens,
                   stats=stats)
    for key, r in out.items():
        if isinstance(r, Exception):
            stats.failed[key] = str(r)
    return out
