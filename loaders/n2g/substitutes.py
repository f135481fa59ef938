"""Substitute sources (the model's own next-token prediction, embedding neighbours) and token
helpers (case/space normalisation, sentence ends) for N2G on real models."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np

from .batched import _cover
from .fit import ActivationFn, SubstituteFn

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

    ``logits_fn`` may carry ``logits_fn.at(batch, positions)`` -> logits [sum of positions, V] at
    the asked positions of each row only (the vocabulary projection is a fifth of SmolLM2's
    forward pass). ``logits_fn`` maps a batch of equal-length token
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
        # A prompt asked twice (neurons of a layer share windows), or one that is the start of a
        # longer one, is read from the one that runs: a causal model's prediction at position t
        # sees only tokens up to t.
        uniq: dict[tuple[int, ...], int] = {}
        refs = [(i, uniq.setdefault(tuple(seq), len(uniq))) for i, seq in need]
        seqs = list(uniq)
        cover = _cover(seqs)
        runs = sorted({cover[u][0] for _, u in refs}, key=lambda r: len(seqs[r]))  # little padding
        # With ``logits_fn.at`` the vocabulary projection runs at the asked positions only.
        at_fn = getattr(logits_fn, "at", None)
        wanted: dict[int, set[int]] = defaultdict(set)
        for i, u in refs:
            wanted[cover[u][0]] |= {len(prefix) + j - 1 for j in positions[i] if len(prefix) + j - 1 >= 0}
        tops: dict[int, Any] = {}
        for s in range(0, len(runs), batch_size):
            chunk = runs[s:s + batch_size]
            T = max(len(seqs[r]) for r in chunk)
            batch = [list(seqs[r]) + [pad] * (T - len(seqs[r])) for r in chunk]
            if at_fn is not None:
                pos = [sorted(wanted[r]) for r in chunk]
                logits = at_fn(batch, pos)  # [sum of positions, V]
                top = _top_ids(logits, min(want, int(logits.shape[-1])))
                n = 0
                for r, ps in zip(chunk, pos):
                    tops[r] = {p: top[n + q] for q, p in enumerate(ps)}
                    n += len(ps)
                continue
            logits = logits_fn(batch)
            top = _top_ids(logits, min(want, int(logits.shape[-1])))
            for row, r in enumerate(chunk):
                tops[r] = top[row]
        for i, u in refs:
            top = tops[cover[u][0]]
            for slot, j in enumerate(positions[i]):
                at = len(prefix) + j - 1
                if at < 0:
                    continue
                out[i][slot] = pick(top[at], int(prompts[i][j]))
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

