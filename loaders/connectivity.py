"""Compute a model's connectivity and write it to the graph as typed, weighted edges.

    model = load_model("smollm2-135m")                       # loaders.model
    sizes = await build_connectivity(store, model, contexts)  # contexts [N, T] token ids

Edges (all carry ``weight`` and ``rank``, the 0-based position in the list that selected
them; a bottom-k list ranks its most negative first, so the weight's sign tells them apart):

- ``COMPOSES {kind}`` between neurons, pointing from the neuron that writes to the one that
  reads: ``out_in`` (A→B, B in A's list), ``in_out`` (A→B, A in B's list), ``virtual`` and
  ``gate_virtual`` (A's output through B's ln2-scaled input / gate, A earlier than B; the
  union of A's downstream and B's upstream top/bottom-k, rank = the better of the two).
  ``in_in`` and ``out_out`` are symmetric: owner → partner.
- ``HEAD_COMPOSES {kind: K|Q|V}`` neuron→head and ``{kind: O}`` head→neuron: the union of
  each neuron's top-k heads and each head's top-k neurons.
- ``TOKEN_EFFECT {kind: input|output}`` neuron→token, top-k and bottom-k tokens.
- ``CORRELATES {kind: pearson}`` owner→partner, top-k and bottom-k.

Neuron properties: ``comp_<list>_{mean,std,hist,range}`` for the eight composition lists
(see :mod:`loaders.composition`) and ``corr_{mean,std,hist}``, so a client can tell how
unusual an edge is. Writes are idempotent ``MERGE``s; each finished kind is recorded on the
Model (``connectivity``), and ``resume=True`` skips those on a re-run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from neurograph.domain import ModelInfo, head_key, layer_key, model_key, neuron_key, token_key
from neurograph.progress import Counter

from .memory import release_memory
from .composition import (ALL_LISTS, CompositionList, HeadComposition, TokenEffects, TopK,
                          head_composition, neuron_composition, token_effects)
from .correlations import CorrelationResult, activation_batches, correlate
from .weights import ModelWeights, model_weights

log = logging.getLogger(__name__)

KINDS = ("composition", "heads", "tokens", "correlation")


# --- rows ---------------------------------------------------------------------------------
# A big model's edges are millions of rows; as one list of dicts they take gigabytes (about
# 500 bytes a row). They stay tensors until written, and become dicts a chunk at a time.
ROW_CHUNK = 20000


class LazyRows:
    """Rows made a chunk at a time while they are written; ``len`` is known up front.

        rows = composition_rows("m", 1536, lists)
        len(rows), next(iter(rows))      # {"src": ..., "dst": ..., "kind": ..., ...}
    """

    def __init__(self, length: int, chunks: Callable[[], Iterable[list[dict]]]) -> None:
        self.length, self.chunks = length, chunks

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for chunk in self.chunks():
            yield from chunk


def _entries(top: TopK, mine: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(owner, partner, value, rank) of every filled slot of a TopK; with ``mine`` (a bool per
    owner: a shard's neurons) only those owners' slots."""
    filled = top.indices >= 0
    if mine is not None:
        filled &= mine[:, None]
    owners, ranks = torch.nonzero(filled, as_tuple=True)
    return owners, top.indices[owners, ranks], top.values[owners, ranks], ranks


def owned_neurons(n_layers: int, d_mlp: int, layers: Iterable[int] | None) -> torch.Tensor | None:
    """A shard's ownership: True for the neurons of ``layers`` (None: every neuron, no shard).
    Every edge is written by the shard owning the neuron whose list selected it; an edge two
    lists selected (virtual weights: the writer's down list and the reader's up list) may be
    written by two shards, and upsert_composes keeps the better rank, in any order."""
    if layers is None:
        return None
    mine = torch.zeros(n_layers, dtype=torch.bool)
    mine[list(layers)] = True
    return mine.repeat_interleave(d_mlp)


def _best_edges(parts: Sequence[tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
    """One edge per (a, b, kind) from parts of (a, b, kind, weight, rank) tensors: the
    smallest rank, the first given on a tie. Sorted by a, b, kind."""
    if not parts:
        return [torch.zeros(0, dtype=torch.long)] * 5
    a, b, kind, weight, rank = (torch.cat([p[i] for p in parts]) for i in range(5))
    if not len(a):
        return [a, b, kind, weight, rank]
    key = (a * (int(b.max()) + 1) + b) * (int(kind.max()) + 1) + kind
    order = torch.argsort(rank, stable=True)
    order = order.index_select(0, torch.argsort(key.index_select(0, order), stable=True))
    key = key.index_select(0, order)
    first = torch.ones(len(key), dtype=torch.bool)
    first[1:] = key[1:] != key[:-1]
    keep = order[first]
    return [t.index_select(0, keep) for t in (a, b, kind, weight, rank)]


def _edge_rows(edges: list[torch.Tensor], row: Callable[[int, int, int, float, int], dict]) -> LazyRows:
    def chunks() -> Iterable[list[dict]]:
        for s in range(0, len(edges[0]), ROW_CHUNK):
            cols = [t[s:s + ROW_CHUNK].tolist() for t in edges]
            yield [row(*r) for r in zip(*cols)]
    return LazyRows(len(edges[0]), chunks)


def _neuron_keys(model: str, n: int, d_mlp: int) -> list[str]:
    return [neuron_key(model, g // d_mlp, g % d_mlp) for g in range(n)]


def composition_rows(model: str, d_mlp: int, lists: dict[str, CompositionList],
                     mine: torch.Tensor | None = None) -> LazyRows:
    """upsert_composes rows for every list, oriented writer → reader (see module doc); with
    ``mine``, only the lists of those owners (a shard)."""
    kinds = sorted({lst.kind for lst in lists.values()})
    parts = []
    for name, lst in lists.items():
        reader_owns = name == "in_out" or name.endswith("_up")
        for top in (lst.top, lst.bottom):
            o, p, v, r = _entries(top, mine)
            src, dst = (p, o) if reader_owns else (o, p)
            parts.append((src, dst, torch.full_like(o, kinds.index(lst.kind)), v, r))
    n = next(iter(lists.values())).top.indices.shape[0] if lists else 0
    keys = _neuron_keys(model, n, d_mlp)
    return _edge_rows(_best_edges(parts),
                      lambda a, b, k, w, r: {"src": keys[a], "dst": keys[b], "kind": kinds[k],
                                             "weight": w, "rank": r})


def composition_props(model: str, d_mlp: int, lists: dict[str, CompositionList],
                      mine: torch.Tensor | None = None) -> LazyRows:
    """set_neuron_props rows with each list's mean, std, histogram and histogram range (with
    ``mine``, for those owners only)."""
    n = next(iter(lists.values())).summary.n.shape[0] if lists else 0
    has = torch.zeros(n, dtype=torch.bool)
    for lst in lists.values():
        has |= lst.summary.n > 0
    if mine is not None:
        has &= mine
    step = max(1, ROW_CHUNK // 10)

    def chunks() -> Iterable[list[dict]]:
        for s in range(0, n, step):
            e = min(s + step, n)
            props: list[dict] = [{} for _ in range(e - s)]
            keep = has[s:e].tolist()
            for name, lst in lists.items():
                sm = lst.summary
                counted = (sm.n[s:e] > 0).tolist()
                mean, std, hist = sm.mean[s:e].tolist(), sm.std[s:e].tolist(), sm.hist[s:e].tolist()
                for i, p in enumerate(props):
                    if not counted[i] or not keep[i]:  # no partner of that kind, or not this shard's
                        continue
                    p[f"comp_{name}_mean"], p[f"comp_{name}_std"] = mean[i], std[i]
                    if sm.bins:
                        p[f"comp_{name}_hist"], p[f"comp_{name}_range"] = hist[i], [sm.lo, sm.hi]
            yield [{"key": neuron_key(model, g // d_mlp, g % d_mlp), "props": p}
                   for g, p in zip(range(s, e), props) if p]
    return LazyRows(int(has.sum()), chunks)


HEAD_KIND_IDS = ("K", "Q", "V", "O")


def head_rows(model: str, d_mlp: int, n_heads: int, hc: HeadComposition,
              mine: torch.Tensor | None = None) -> tuple[LazyRows, LazyRows]:
    """(neuron→head rows for K/Q/V, head→neuron rows for O): union of both top-k lists. Every
    list is complete in every shard (head composition is cheap); ``mine`` keeps the edges of
    those neurons, so each edge has one owner."""
    hk = lambda j: head_key(model, j // n_heads, j % n_heads)  # noqa: E731
    out = []
    for kinds in (("K", "Q", "V"), ("O",)):
        parts = []
        for kind in (k_ for k_ in kinds if k_ in hc.scores):
            kid = HEAD_KIND_IDS.index(kind)
            for top, neuron_owns in ((hc.by_neuron[kind], True), (hc.by_head[kind], False)):
                o, p, v, r = _entries(top)
                neuron, head = (o, p) if neuron_owns else (p, o)
                parts.append((neuron, head, torch.full_like(o, kid), v, r))
        edges = _best_edges(parts)
        if mine is not None:
            keep = mine[edges[0]]
            edges = [t[keep] for t in edges]
        n = int(edges[0].max()) + 1 if len(edges[0]) else 0
        keys = _neuron_keys(model, n, d_mlp)
        out.append(_edge_rows(edges, lambda a, b, k, w, r: {"neuron": keys[a], "head": hk(b),
                                                            "kind": HEAD_KIND_IDS[k], "weight": w, "rank": r}))
    return out[0], out[1]


def token_rows(model: str, d_mlp: int, te: TokenEffects, mine: torch.Tensor | None = None
               ) -> tuple[LazyRows, set[int]]:
    """upsert_token_effects rows and the token ids they reference (``mine``: a shard's)."""
    kinds = ("input", "output")
    parts = []
    for kid, kind in enumerate(kinds):
        for top in (getattr(te, f"{kind}_top"), getattr(te, f"{kind}_bottom")):
            o, t, v, r = _entries(top, mine)
            parts.append((o, t, torch.full_like(o, kid), v, r))
    edges = _best_edges(parts)
    ids = set(torch.unique(edges[1]).tolist())
    n = int(edges[0].max()) + 1 if len(edges[0]) else 0
    keys = _neuron_keys(model, n, d_mlp)
    tkeys = {i: token_key(model, i) for i in ids}
    return _edge_rows(edges, lambda a, b, k, w, r: {"neuron": keys[a], "token": tkeys[b], "kind": kinds[k],
                                                    "weight": w, "rank": r, "count": None}), ids


def correlation_rows(model: str, d_mlp: int, corr: CorrelationResult) -> tuple[LazyRows, LazyRows]:
    """(upsert_correlates rows owner→partner, set_neuron_props rows with corr_* summaries)."""
    parts = []
    for top in (corr.top, corr.bottom):
        o, p, v, r = _entries(top)
        parts.append((o, p, torch.zeros_like(o), v, r))
    n = corr.top.indices.shape[0]
    keys = _neuron_keys(model, n, d_mlp)
    rows = _edge_rows(_best_edges(parts), lambda a, b, k, w, r: {"src": keys[a], "dst": keys[b],
                                                                 "weight": w, "rank": r})
    s = corr.summary
    counted = s.n > 0
    step = max(1, ROW_CHUNK // 10)

    def chunks() -> Iterable[list[dict]]:
        for a in range(0, n, step):
            e = min(a + step, n)
            mean, std, hist = s.mean[a:e].tolist(), s.std[a:e].tolist(), s.hist[a:e].tolist()
            yield [{"key": keys[g], "props": {"corr_mean": mean[g - a], "corr_std": std[g - a],
                                              "corr_hist": hist[g - a], "corr_n_tokens": corr.n_tokens}}
                   for g, c in zip(range(a, e), counted[a:e].tolist()) if c]
    return rows, LazyRows(int(counted.sum()), chunks)


# --- writing ---------------------------------------------------------------------------
async def _write(store: Any, name: str, rows: Sequence[dict], desc: str, progress: bool) -> int:
    with Counter(f"write {desc}", total=len(rows), enabled=progress) as count:
        return await store.write(name, rows, progress=count)


async def ensure_units(store: Any, info: ModelInfo, *, progress: bool = True) -> dict:
    """Write the Model, Layer, Neuron and Head nodes that are missing (the harvest normally
    writes them; this lets connectivity run alone). Existing nodes keep their properties."""
    name = info.name
    state = (await store.query("model_connectivity_state", model=model_key(name)))[0]
    if not state["models"]:
        await store.write("upsert_models", [info.row()])
    if state["layers"] < info.n_layers:
        await store.write("upsert_layers", [{"key": layer_key(name, l), "model": name, "layer": l,
                                             "n_neurons": info.d_mlp} for l in range(info.n_layers)])
    if state["neurons"] < info.n_layers * info.d_mlp:
        rows = [{"key": neuron_key(name, l, i), "model": name, "layer": l, "index": i,
                 "layer_key": layer_key(name, l), "props": {}}
                for l in range(info.n_layers) for i in range(info.d_mlp)]
        await _write(store, "upsert_neurons", rows, "neurons", progress)
    if info.n_heads and state["heads"] < info.n_layers * info.n_heads:
        await store.write("upsert_heads", [{"key": head_key(name, l, h), "model": name, "layer": l, "head": h,
                                            "layer_key": layer_key(name, l)}
                                           for l in range(info.n_layers) for h in range(info.n_heads)])
    return state


def _token_text(tokenizer: Any, ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(ids)
    if tokenizer is None:
        return {i: f"<{i}>" for i in ids}
    try:
        return {i: tokenizer.decode([i]) for i in ids}
    except Exception:  # a tokenizer without decode for single ids
        return {i: str(t) for i, t in zip(ids, tokenizer.convert_ids_to_tokens(ids))}


def _ignore_ids(tokenizer: Any) -> set[int]:
    ids = set()
    for attr in ("bos_token_id", "pad_token_id"):
        v = getattr(tokenizer, attr, None) if tokenizer is not None else None
        if v is not None:
            ids.add(int(v))
    return ids


async def build_connectivity(
    store: Any, model: Any, contexts: torch.Tensor | None = None, *,
    kinds: Iterable[str] = KINDS, k: int = 10, k_heads: int = 5, k_tokens: int = 10,
    weights: ModelWeights | None = None,
    activations: Callable[[], Iterable[torch.Tensor]] | None = None,
    batch_size: int = 8, memory_mb: float = 1024, corr_memory_mb: float = 2048,
    corr_cache_dir: str | Path | None = None,
    summaries: bool = True, resume: bool = False, device: str | torch.device = "cpu",
    progress: bool = True, layers: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Compute and write the connectivity of ``model`` (a ``loaders.model.LoadedModel``:
    ``.name``, ``.info``, ``.tokenizer``, ``.bridge``).

    - ``weights``: use these instead of reading ``model.bridge``.
    - ``contexts`` [N, T] token ids feed the correlation pass through
      ``loaders.activations.iter_mlp_activations`` (the bridge's ``mlp.hook_post`` while
      that module is absent; BOS and padding positions ignored); or give
      ``activations``, a callable returning an iterable of [tokens, n_neurons] batches.
      Without either, correlations are skipped.
    - ``k``: neuron↔neuron top-k and bottom-k per list (Universal Neurons keeps 20, the
      OpenAI viewer shows 10); ``k_heads`` per neuron and per head; ``k_tokens`` per neuron.
    - ``corr_memory_mb``: the correlation accumulator budget; beyond it the corpus is read in
      several passes, replayed from activations stored in ``corr_cache_dir`` (a temporary
      folder by default).
    - ``summaries``: also write the per-neuron distribution properties.
    - ``layers``: a shard — only the lists (edges, summaries) of these layers' neurons are
      computed and written (see :func:`owned_neurons`); shards together give one run's graph.
    Returns rows written per kind and seconds spent computing and writing.
    """
    kinds = tuple(kinds)
    bad = set(kinds) - set(KINDS)
    if bad:
        raise ValueError(f"unknown connectivity kinds {sorted(bad)}; choose from {KINDS}")
    info: ModelInfo = model.info
    name, d_mlp = info.name, info.d_mlp
    state = await ensure_units(store, info, progress=progress)
    done = set(state.get("done") or []) if resume else set()
    layers = None if layers is None else sorted(set(layers))
    mine = owned_neurons(info.n_layers, d_mlp, layers)
    w = weights if weights is not None else None
    report: dict[str, Any] = {"times": {}}

    def weights_() -> ModelWeights:
        nonlocal w
        if w is None:
            w = model_weights(model)
        return w

    async def mark(kind: str) -> None:
        done.add(kind)
        await store.query("set_model_connectivity", key=model_key(name), kinds=sorted(done))

    if "composition" in kinds and "composition" not in done:
        t0 = time.perf_counter()
        lists = neuron_composition(weights_(), k, lists=ALL_LISTS, memory_mb=memory_mb,
                                   device=device, progress=progress, layers=layers)
        rows = composition_rows(name, d_mlp, lists, mine)
        t1 = time.perf_counter()
        report["composition"] = await _write(store, "upsert_composes", rows, "composition edges", progress)
        if summaries:
            report["composition_props"] = await _write(store, "set_neuron_props",
                                                       composition_props(name, d_mlp, lists, mine),
                                                       "composition summaries", progress)
        report["times"]["composition"] = (t1 - t0, time.perf_counter() - t1)
        del lists, rows
        release_memory()
        await mark("composition")

    if "heads" in kinds and "heads" not in done:
        t0 = time.perf_counter()
        hc = head_composition(weights_(), k_heads, device=device, progress=progress)
        to_head, to_neuron = head_rows(name, d_mlp, weights_().n_heads, hc, mine)
        t1 = time.perf_counter()
        report["heads"] = await _write(store, "upsert_neuron_to_head", to_head, "neuron→head edges", progress) \
            + await _write(store, "upsert_head_to_neuron", to_neuron, "head→neuron edges", progress)
        report["times"]["heads"] = (t1 - t0, time.perf_counter() - t1)
        del hc, to_head, to_neuron
        release_memory()
        await mark("heads")

    if "tokens" in kinds and "tokens" not in done:
        t0 = time.perf_counter()
        te = token_effects(weights_(), k_tokens, memory_mb=memory_mb, device=device, progress=progress,
                           layers=layers)
        rows, ids = token_rows(name, d_mlp, te, mine)
        text = _token_text(getattr(model, "tokenizer", None), ids)
        t1 = time.perf_counter()
        await _write(store, "upsert_tokens", [{"key": token_key(name, i), "model": name, "id": i, "text": text[i]}
                                              for i in sorted(ids)], "tokens", progress)
        report["tokens"] = await _write(store, "upsert_token_effects", rows, "token edges", progress)
        report["times"]["tokens"] = (t1 - t0, time.perf_counter() - t1)
        del te, rows
        release_memory()
        await mark("tokens")

    if "correlation" in kinds and "correlation" not in done:
        source = activations
        if source is None and contexts is not None:
            source = activation_batches(model, contexts, batch_size=batch_size,
                                        ignore_ids=_ignore_ids(getattr(model, "tokenizer", None)))
        if source is None:
            log.info("no contexts or activations given: correlations skipped")
        else:
            t0 = time.perf_counter()
            # when the budget needs several passes, the first one stores the activations on
            # disk (float32, n_neurons * 4 bytes per token) and the others read them back
            with tempfile.TemporaryDirectory(prefix="neurograph-acts-") as tmp:
                owners = None if layers is None else [range(l * d_mlp, (l + 1) * d_mlp) for l in layers]
                corr = correlate(source, info.n_layers * d_mlp, k, memory_mb=corr_memory_mb,
                                 device=device, progress=progress, cache_dir=corr_cache_dir or tmp, owners=owners)
            rows, props = correlation_rows(name, d_mlp, corr)
            t1 = time.perf_counter()
            report["correlation"] = await _write(store, "upsert_correlates", rows, "correlation edges", progress)
            if summaries:
                report["correlation_props"] = await _write(store, "set_neuron_props", props,
                                                           "correlation summaries", progress)
            report["times"]["correlation"] = (t1 - t0, time.perf_counter() - t1)
            report["n_tokens"] = corr.n_tokens
            await mark("correlation")
    return report
