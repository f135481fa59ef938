"""Build a model's neuron graph from its activations over a corpus.

    >>> model = load_model("smollm2-135m")
    >>> ctx = corpus_contexts(model, "default", n_tokens=DEFAULT_TOKENS)
    >>> summary = await build_from_model(store, model, ctx, top_k=20)
    >>> summary["neurons"], summary["examples"]

Writes, through the store's idempotent named queries: the Model, its Layers, every Neuron with
its activation statistics as properties (moments, fraction active, extremes, histogram,
quantiles, interest score and ranks), the Tokens and Examples referenced, ``ACTIVATES_ON``
edges (kind ``max`` / ``min``, and ``random`` for a uniform sample of contexts when asked; rank,
per-token activations, pivot) and ``TOKEN_EFFECT`` edges
of kind ``activation`` (weight = mean activation on the token, count). The same inputs give
the same graph; an interrupted run resumes from the harvest checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from neurograph.domain import example_key, layer_key, neuron_key, token_key
from neurograph.progress import Counter

from .activations import HarvestResult, clear_checkpoint, harvest, interest_scores
from .corpus import Contexts, as_contexts

if TYPE_CHECKING:
    from .model import LoadedModel

DEFAULT_TOKENS = 32768      # corpus tokens scanned by `neurograph build` on the demo model
DEFAULT_TOP_K = 20          # max and min examples per neuron (Neuroscope shows 20)
DEFAULT_TOKEN_TOP_K = 10    # activation TOKEN_EFFECT edges per neuron
WRITE_BATCH = 1000


def default_checkpoint_dir() -> Path:
    from neurograph.config import Settings

    return Settings.from_env().data_dir / "checkpoints"


def _f(x: Any) -> float:
    return float(np.float32(x))


def _layers(r: HarvestResult) -> list[tuple[int, int]]:
    """(row in the result, model layer) pairs: a shard's result holds only its layers."""
    return list(enumerate(r.layers if r.layers is not None else range(r.n_layers)))


def neuron_rows(model_name: str, r: HarvestResult) -> Iterator[dict[str, Any]]:
    """One upsert_neurons row per neuron; the histogram is trimmed to its non-empty bins."""
    edges = r.hist_edges
    for row, layer in _layers(r):
        lk = layer_key(model_name, layer)
        for i in range(r.d_mlp):
            counts = r.hist_counts[row, i]
            nz = np.flatnonzero(counts)
            lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            props = {
                "mean": _f(r.mean[row, i]), "var": _f(r.var[row, i]), "skew": _f(r.skew[row, i]),
                "kurt": _f(r.kurt[row, i]), "frac_active": _f(r.frac_active[row, i]),
                "max": _f(r.max[row, i]), "min": _f(r.min[row, i]),
                "hist_edges": [_f(e) for e in edges[lo:hi + 1]] if nz.size else [],
                "hist_counts": [int(c) for c in counts[lo:hi]],
                "quantiles": [_f(q) for q in r.quantiles[row, i]],
                "interest": _f(r.interest[row, i]),
                "interest_rank": int(r.interest_rank[row, i]),
                "interest_layer_rank": int(r.interest_layer_rank[row, i]),
                "act_tokens": int(r.n_tokens),
            }
            yield {"key": neuron_key(model_name, layer, i), "model": model_name, "layer": layer, "index": i,
                   "layer_key": lk, "props": props}


def _edges(model_name: str, r: HarvestResult, skip: int) -> Iterator[dict[str, Any]]:
    lists = [("max", r.top_max_ctx, r.top_max_pivot, r.top_max_acts),
             ("min", r.top_min_ctx, r.top_min_pivot, r.top_min_acts)]
    if r.random_ctx is not None:
        lists.append(("random", r.random_ctx, r.random_pivot, r.random_acts))
    for kind, ctx, piv, acts in lists:
        for row, layer in _layers(r):
            for i in range(r.d_mlp):
                nk = neuron_key(model_name, layer, i)
                for rank in range(ctx.shape[2]):
                    c = int(ctx[row, i, rank])
                    if c < 0:
                        break
                    yield _edge(model_name, nk, kind, rank, c, acts[row, i, rank], skip, int(piv[row, i, rank]))
    if r.quantile_ctx is not None:
        yield from _quantile_edges(model_name, r, skip)


def _edge(model_name: str, nk: str, kind: str, rank: int, c: int, a: np.ndarray, skip: int, pivot: int,
          **extra: Any) -> dict[str, Any]:
    body = a[skip:]
    return {"neuron": nk, "example": example_key(model_name, c), "kind": kind, "rank": rank,
            "activations": [float(v) for v in a], "max_activation": _f(body.max()),
            "min_activation": _f(body.min()), "pivot": pivot, "bin": None, "bin_low": None, "bin_high": None,
            "bin_count": None, **extra}


def _quantile_edges(model_name: str, r: HarvestResult, skip: int) -> Iterator[dict[str, Any]]:
    """kind 'quantile': rank runs over the intervals in order (interval ``bin`` holds ranks
    bin*k .. bin*k+k-1), each edge with its interval's bounds and how many contexts it holds."""
    nb, k = r.quantile_ctx.shape[2:]
    for row, layer in _layers(r):
        for i in range(r.d_mlp):
            nk = neuron_key(model_name, layer, i)
            lo_hi = r.quantile_edges[row, i]
            for b in range(nb):
                for slot in range(k):
                    c = int(r.quantile_ctx[row, i, b, slot])
                    if c < 0:
                        break
                    yield _edge(model_name, nk, "quantile", b * k + slot, c, r.quantile_acts[row, i, b, slot], skip,
                                int(r.quantile_pivot[row, i, b, slot]), bin=b, bin_low=_f(lo_hi[b]),
                                bin_high=_f(lo_hi[b + 1]), bin_count=int(r.quantile_count[row, i, b]))


def _token_effect_rows(model_name: str, r: HarvestResult, k: int) -> Iterator[dict[str, Any]]:
    k = min(k, r.token_ids.shape[2])
    for row, layer in _layers(r):
        for i in range(r.d_mlp):
            nk = neuron_key(model_name, layer, i)
            for rank in range(k):
                yield {"neuron": nk, "token": token_key(model_name, int(r.token_ids[row, i, rank])),
                       "kind": "activation", "weight": _f(r.token_mean[row, i, rank]), "rank": rank,
                       "count": int(r.token_count[row, i, rank])}


async def write_result(store: Any, model: "LoadedModel", ctx: Contexts, r: HarvestResult, *,
                       token_top_k: int = DEFAULT_TOKEN_TOP_K, progress: bool = True,
                       batch_size: int = WRITE_BATCH) -> dict[str, int]:
    """Write a :class:`HarvestResult` into the graph (idempotent MERGEs). Returns row counts."""
    name = model.name
    tokens = ctx.tokens.numpy()
    skip = 1 if (model.bos_token_id is not None and tokens.shape[1] > 1
                 and bool((tokens[:, 0] == model.bos_token_id).all())) else 0
    info = model.info
    info.dataset, info.n_tokens = ctx.name, int(r.n_tokens)
    model_row = {**info.row(), "quantile_levels": [float(q) for q in r.quantile_levels],
                 "activation_top_k": int(r.top_max_ctx.shape[2]), "ctx_len": int(tokens.shape[1]),
                 "gated_mlp": bool(info.extra.get("gated_mlp", False))}
    layers = [{"key": layer_key(name, l), "model": name, "layer": l, "n_neurons": info.d_mlp}
              for l in range(info.n_layers)]
    used_ctx = np.unique(np.concatenate([r.top_max_ctx.reshape(-1), r.top_min_ctx.reshape(-1)]
                                        + ([r.random_ctx.reshape(-1)] if r.random_ctx is not None else [])
                                        + ([r.quantile_ctx.reshape(-1)] if r.quantile_ctx is not None else [])))
    used_ctx = used_ctx[used_ctx >= 0]
    k_tok = min(token_top_k, r.token_ids.shape[2])
    tok_ids = np.unique(np.concatenate([tokens[used_ctx].reshape(-1), r.token_ids[:, :, :k_tok].reshape(-1)]))
    text = {int(t): model.tokenizer.decode([int(t)]) for t in tok_ids}
    token_rows = [{"key": token_key(name, t), "model": name, "id": t, "text": s} for t, s in text.items()]
    example_rows = [{"key": example_key(name, int(c)), "model": name, "data_index": int(c),
                     "tokens": [text[int(t)] for t in tokens[c]], "token_ids": [int(t) for t in tokens[c]],
                     "source": ctx.sources[c]} for c in used_ctx]
    n_edges = int((r.top_max_ctx >= 0).sum() + (r.top_min_ctx >= 0).sum()
                  + ((r.random_ctx >= 0).sum() if r.random_ctx is not None else 0)
                  + ((r.quantile_ctx >= 0).sum() if r.quantile_ctx is not None else 0))
    n_tok_edges = r.n_layers * info.d_mlp * k_tok
    total = 1 + len(layers) + r.n_layers * info.d_mlp + len(token_rows) + len(example_rows) + n_edges + n_tok_edges
    bar = Counter("writing graph", total=total, enabled=progress)
    counts: dict[str, int] = {}
    try:
        w: Callable[..., Any] = store.write
        counts["models"] = await w("upsert_models", [model_row], progress=bar)
        counts["layers"] = await w("upsert_layers", layers, progress=bar)
        counts["neurons"] = await w("upsert_neurons", neuron_rows(name, r), batch_size=batch_size, progress=bar)
        counts["tokens"] = await w("upsert_tokens", token_rows, batch_size=batch_size * 5, progress=bar)
        counts["examples"] = await w("upsert_examples", example_rows, batch_size=batch_size, progress=bar)
        counts["activations"] = await w("upsert_activations", _edges(name, r, skip), batch_size=batch_size,
                                        progress=bar)
        counts["token_effects"] = await w("upsert_token_effects", _token_effect_rows(name, r, k_tok),
                                          batch_size=batch_size * 5, progress=bar)
    finally:
        bar.close()
    return counts


async def refresh_interest(store: Any, model_name: str) -> int:
    """Recompute the model-wide interest score and ranks (percentiles over every neuron) from
    the statistics stored: a shard of layers only sees its own neurons. The stored float32
    statistics rank exactly as the harvest's own do, so the result equals one run's."""
    rows = await store.query("neuron_interest_stats", model=model_name)
    if not rows:
        return 0
    layer = np.array([r["layer"] for r in rows], dtype=np.int64)
    index = np.array([r["index"] for r in rows], dtype=np.int64)
    L, D = int(layer.max()) + 1, int(index.max()) + 1
    grid = {k: np.full((L, D), np.nan) for k in ("kurt", "max", "frac_active")}
    for k in grid:
        grid[k][layer, index] = [r[k] for r in rows]
    have = np.zeros((L, D), dtype=bool)
    have[layer, index] = True
    # neurons of layers without statistics yet sit at the end of each ranking, out of the way
    score, rank, layer_rank = interest_scores(grid["kurt"], grid["max"], grid["frac_active"], have)
    out = [{"key": neuron_key(model_name, int(l), int(i)),
            "props": {"interest": _f(score[l, i]), "interest_rank": int(rank[l, i]),
                      "interest_layer_rank": int(layer_rank[l, i])}} for l, i in zip(layer, index)]
    return await store.write("set_neuron_props", out, batch_size=WRITE_BATCH * 5)


async def build_from_model(store: Any, model: "LoadedModel", contexts: Any, *, top_k: int = DEFAULT_TOP_K,
                           batch_size: int = 8, min_token_count: int = 5,
                           token_top_k: int = DEFAULT_TOKEN_TOP_K, checkpoint_dir: Path | None = None,
                           checkpoint_every: int | None = None, progress: bool = True,
                           max_batches: int | None = None, random_k: int = 0, quantile_k: int = 0,
                           quantile_bins: int = 10, seed: int = 0,
                           layers: list[int] | None = None) -> dict[str, Any]:
    """Harvest ``model``'s MLP activations over ``contexts`` (a :class:`~loaders.corpus.Contexts`
    or a [N, T] token tensor) and write the activation part of its graph. Returns a summary.

    The harvest checkpoints under ``checkpoint_dir`` (default ``<data dir>/checkpoints``); a
    re-run resumes, and after a complete write the checkpoint is removed. ``max_batches``
    stops the harvest early (an interruption): nothing is written and the summary says so.
    ``quantile_k``/``quantile_bins``/``seed``: examples sampled per interval of each neuron's
    range (a second pass, see :func:`~loaders.activations.harvest`). ``layers``: only these
    layers' neurons (a shard); the model-wide interest ranks are then recomputed from every
    neuron stored so far, so the last shard to finish leaves them as one run would.
    """
    ctx = as_contexts(contexts)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir()
    t0 = time.monotonic()
    # The pass is CPU-bound torch work: run it off the event loop so the store stays responsive.
    result = await asyncio.to_thread(
        harvest, model, ctx.tokens, top_k=top_k, batch_size=batch_size, min_token_count=min_token_count,
        token_top_k=token_top_k, checkpoint_dir=ckpt, checkpoint_every=checkpoint_every, progress=progress,
        max_batches=max_batches, random_k=random_k, layers=layers, quantile_k=quantile_k,
        quantile_bins=quantile_bins, seed=seed)
    t1 = time.monotonic()
    summary: dict[str, Any] = {"model": model.name, "contexts": len(ctx), "ctx_len": int(ctx.tokens.shape[1]),
                               "dataset": ctx.name}
    if result is None:
        return {**summary, "complete": False, "harvest_s": round(t1 - t0, 2)}
    counts = await write_result(store, model, ctx, result, token_top_k=token_top_k, progress=progress)
    if layers is not None and sorted(set(layers)) != list(range(model.info.n_layers)):
        counts["interest"] = await refresh_interest(store, model.name)
    t2 = time.monotonic()
    clear_checkpoint(result)
    return {**summary, "complete": True, "tokens_counted": int(result.n_tokens), **counts,
            "harvest_s": round(t1 - t0, 2), "pass_s": result.pass_seconds, "write_s": round(t2 - t1, 2)}
