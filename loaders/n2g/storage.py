"""Storing N2G: pattern nodes and edges, scores as neuron properties, similar neurons, and
:func:`build_n2g`, the resumable pass over a model's neurons."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

from neurograph.domain import model_key, neuron_key, pattern_key, token_key
from neurograph.errors import NotFound

from .batched import LayerFn, LayerStats, run_layer, run_model
from .sweep import run_sweep, sweep_keys
from .fit import ActivationFn, Example, N2GConfig, NeuronResult, SubstituteFn, run_neuron
from .substitutes import sentence_ends
from .trie import WILDCARD, N2GModel

log = logging.getLogger(__name__)

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


def similar_pairs(token_sets: Mapping[str, Mapping[str, set]], threshold: float = 0.5,
                  max_per_neuron: int | None = 50) -> list[dict]:
    """Symmetric similarity of neurons' N2G token sets: Jaccard of the role-tagged sets
    {("activating", t)} | {("important", t)}. DeepDecipher divides the overlap by a length that
    is not the pair's own, so its scores are asymmetric; here sim(a, b) == sim(b, a), stored once
    with src < dst. Returns upsert_similar rows {src, dst, weight}.

    Every neuron covered makes a naive token -> neurons index quadratic (" the" sits in thousands
    of pattern graphs), so candidates come from prefix filtering (Bayardo et al., "Scaling up all
    pairs similarity search", 2007): with tokens ordered rarest first, two sets with Jaccard >= t
    share a token among the first ``|s| - ceil(t |s|) + 1`` of each, and sets whose sizes differ by
    more than the factor t cannot reach t. The result is exact; ``max_per_neuron`` then keeps the
    strongest edges of each neuron (an edge stays while either end has room).

        >>> similar_pairs({"m/0/1": {"activating": {1}, "important": {2}},
        ...                "m/0/2": {"activating": {1}, "important": {2, 3}}}, 0.5)
        [{'src': 'm/0/1', 'dst': 'm/0/2', 'weight': 0.6666666666666666}]
    """
    tagged = {k: {(role, t) for role, toks in sets.items() for t in toks} for k, sets in token_sets.items()}
    freq: dict[tuple, int] = defaultdict(int)
    for s_ in tagged.values():
        for item in s_:
            freq[item] += 1
    index: dict[tuple, list[str]] = defaultdict(list)
    for k in sorted(tagged):
        items = sorted(tagged[k], key=lambda it: (freq[it], repr(it)))
        n = len(items)
        p = n - math.ceil(threshold * n) + 1 if threshold > 0 else n
        for item in items[:max(p, 0)]:
            index[item].append(k)
    seen: set[tuple[str, str]] = set()
    rows = []
    for neurons in index.values():
        for x, a in enumerate(neurons):
            la = len(tagged[a])
            for b in neurons[x + 1:]:
                if (a, b) in seen:
                    continue
                seen.add((a, b))
                lb = len(tagged[b])
                if threshold > 0 and min(la, lb) < threshold * max(la, lb):
                    continue
                inter = len(tagged[a] & tagged[b])
                w = inter / (la + lb - inter)
                if w >= threshold and inter:
                    rows.append({"src": a, "dst": b, "weight": w})
    if max_per_neuron is not None:
        rows.sort(key=lambda r: (-r["weight"], r["src"], r["dst"]))
        room: dict[str, int] = defaultdict(lambda: max_per_neuron)
        kept = []
        for r in rows:
            if room[r["src"]] > 0 or room[r["dst"]] > 0:
                kept.append(r)
                room[r["src"]] -= 1
                room[r["dst"]] -= 1
        rows = kept
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


def examples_from_rows(rows: Iterable[Mapping[str, Any]], tokens: Mapping[str, Mapping[str, Any]] | None = None
                       ) -> dict[tuple[int, int], list[Example]]:
    """Group n2g_top_examples_of rows into examples per (layer, index); token ids are read from
    ``token_ids`` when the example stores them, else from ``tokens`` if those are ints: from
    ``tokens`` (example key -> its n2g_example_tokens row) where given, else from the row."""
    ids = {key: _token_ids(t, key) for key, t in tokens.items()} if tokens is not None else None
    out: dict[tuple[int, int], list[Example]] = defaultdict(list)
    for r in rows:
        toks = ids.get(r["example"], []) if ids is not None else _token_ids(r, r.get("example"))
        out[(int(r["layer"]), int(r["index"]))].append(Example(toks, list(r["activations"]), r.get("pivot")))
    return dict(out)


def _token_ids(row: Mapping[str, Any], example: Any) -> list[int]:
    toks = row.get("token_ids") or row.get("tokens") or []
    if toks and not all(isinstance(t, int) for t in toks):
        raise ValueError(f"example {example!r} has token strings, not ids: N2G needs token ids")
    return list(toks)


async def write_neurons(store: Any, model_name: str, results: Sequence[tuple[int, int, NeuronResult]],
                        decode: Callable[[int], str] | None = None) -> None:
    """:func:`write_neuron` for many neurons, each statement once for all of them (idempotent)."""
    if not results:
        return
    decode = decode or str
    nodes: list[dict] = []
    edges: list[dict] = []
    matches: list[dict] = []
    tokens: set[int] = set()
    props: list[dict] = []
    for layer, index, result in results:
        n, e, m = pattern_rows(model_name, layer, index, result.model, decode)
        nodes += n
        edges += e
        matches += m
        tokens |= {t for nd in result.model.nodes if nd.role != "ignore" for t in nd.token_ids}
        props.append({"key": neuron_key(model_name, layer, index), "props": result.props(decode)})
    await store.write("delete_pattern_nodes", [{"neuron": neuron_key(model_name, l, i)} for l, i, _ in results])
    await store.write("upsert_tokens", [{"key": token_key(model_name, t), "model": model_name, "id": t,
                                         "text": decode(t)} for t in sorted(tokens)])
    await store.write("upsert_pattern_nodes", nodes)
    await store.write("upsert_pattern_edges", edges)
    await store.write("upsert_pattern_matches", matches)
    await store.write("set_neuron_props", props)


def _groups(todo: Sequence[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    """Neurons in ``todo``'s order, cut into groups of at most ``size`` of one layer each: a group
    is flushed when full, so a priority order (most interesting of every layer first) is kept.

        >>> _groups([(0, 5), (1, 2), (0, 1), (1, 7), (0, 3)], 2)
        [[(0, 5), (0, 1)], [(1, 2), (1, 7)], [(0, 3)]]
    """
    out: list[list[tuple[int, int]]] = []
    open_: dict[int, list[tuple[int, int]]] = {}
    for k in todo:
        g = open_.setdefault(k[0], [])
        g.append(k)
        if len(g) >= size:
            out.append(open_.pop(k[0]))
    out += [g for g in open_.values() if g]
    return out


async def build_n2g(store: Any, model_name: str, activation_fn: Callable[[int, int], ActivationFn] | None = None, *,
                    pad_token: int,
                    layer_fn: Callable[[int], LayerFn] | None = None,
                    model_fn: LayerFn | None = None,
                    examples: Mapping[tuple[int, int], Sequence[Example]] | None = None,
                    neurons: Iterable[tuple[int, int]] | None = None, layers: Iterable[int] | None = None,
                    substitutes: SubstituteFn | None = None,
                    decode: Callable[[int], str] | None = None,
                    normalise: Callable[[int], Hashable] | None = None,
                    config: N2GConfig = N2GConfig(), top_k: int = 20, force: bool = False,
                    similar_threshold: float | None = 0.5, progress: bool = True,
                    order: Sequence[tuple[int, int]] | None = None, group: int = 64,
                    stats: LayerStats | None = None, similar_every_s: float | None = None,
                    sweep: str | Path | None = None, contexts_per_block: int = 4,
                    sweep_worker: tuple[int, int] | None = None) -> dict[str, Any]:
    """Fit, score and store N2G for neurons of a model; resumable.

    Give ``layer_fn(layer)`` (the layer's activations [B, T, d_mlp] over token sequences) to fit
    up to ``group`` neurons of a layer together with shared forward passes
    (:func:`loaders.n2g.batched.run_layer`), or ``activation_fn(layer, index)`` (the neuron's
    :data:`ActivationFn`) to fit one neuron at a time, or ``model_fn`` (a model-wide function,
    :func:`loaders.n2g.batched.run_model`) to fit ``group`` neurons of any layers together, every
    layer read from the same forward passes; the method and the graphs are the same.
    ``examples`` maps (layer, index) to top examples; without it the neurons' stored
    ``ACTIVATES_ON {kind:'max'}`` examples are read (``top_k`` of them), a group at a time.
    Neurons that already have N2G results are skipped unless ``force``; ``order`` (neuron keys,
    first first) sets the order of the work, e.g. the most interesting neurons of every layer
    first, and others follow by (layer, index). Each group is stored as soon as it is fitted, so
    an interruption loses one group at most. Trie keys are exact token ids unless ``normalise``
    is given (e.g. :func:`text_normaliser`, the reference code's case and space folding). Returns
    a summary {done, skipped, failed, similar}. ``similar_every_s``: also refresh the SIMILAR edges
    that often while going (a long background pass shows them before its end).

    ``sweep`` (a folder, with ``model_fn``): fit all the neurons at once, a block of
    ``contexts_per_block`` contexts at a time (:func:`loaders.n2g.sweep.run_sweep`: neurons that
    peak on the same contexts share every forward pass; the same graphs). Each neuron is stored
    when its last block is done, most of them near the end; the blocks done are kept in the folder,
    so an interrupted sweep goes on from there with the neurons it started with.
    ``sweep_worker`` (i, n): one of n processes on this machine sweeping together through the
    folder (each stores the neurons of layers with layer % n == i; a later one joins the sweep
    the first started).

        summary = await build_n2g(store, "smollm2-135m", layer_fn=lambda l: layer_fns[l],
                                  pad_token=0, layers=[0, 1], substitutes=subs, decode=decode)
    """
    from neurograph.progress import Counter

    if sum(f is not None for f in (activation_fn, layer_fn, model_fn)) != 1:
        raise ValueError("build_n2g needs one of activation_fn (per neuron), layer_fn (a layer at a time) "
                         "or model_fn (every layer at once)")
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
    if order is not None:
        rank = {(int(l), int(i)): r for r, (l, i) in enumerate(order)}
        todo.sort(key=lambda k: (rank.get(k, len(rank)), k))
    summary: dict[str, Any] = {"done": 0, "skipped": len(wanted) - len(todo), "failed": [], "similar": 0}
    stats = stats if stats is not None else LayerStats()
    if sweep is not None:
        if model_fn is None:
            raise ValueError("the sweep needs model_fn (every layer from one forward pass)")
        # An interrupted sweep goes on with the neurons it started with (its plan, its kept blocks);
        # those stored since (by its kept blocks before, or fitted on their own) are not written again
        # (each restart of the demo wrote the ~8,000 neurons of its kept blocks again).
        started = sweep_keys(sweep) or []
        keys = started if set(todo) <= set(started) <= wanted else todo
        await _store_sweep(store, model_name, model_fn, keys, examples, sweep, summary, stats, set(keys) - set(todo),
                           pad_token=pad_token,
                           substitutes=substitutes, normalise=normalise, sentence_end=sentence_end, config=config,
                           top_k=top_k, decode=decode, progress=progress, contexts_per_block=contexts_per_block,
                           worker=sweep_worker, similar=similar_threshold, similar_every_s=similar_every_s)
        if similar_threshold is not None:
            summary["similar"] = await update_similar(store, model_name, similar_threshold)
        return summary
    bar = Counter(f"N2G {model_name}", total=len(todo), enabled=progress)
    last_similar = time.monotonic()
    try:
        size = max(1, group) if model_fn is not None else 256
        for keys in (_groups(todo, max(1, group)) if layer_fn is not None
                     else [todo[s:s + size] for s in range(0, len(todo), size)]):
            exs = await _read_examples(store, model_name, keys, examples, top_k)  # a bounded read per group
            keys = [k for k in keys if k in exs]  # without examples a neuron has nothing to fit
            fitted: list[tuple[int, int, Any]] = []
            if model_fn is not None and keys:
                got = run_model(model_fn, {(l, i): exs[(l, i)] for l, i in keys},
                                pad_token=pad_token, substitutes=substitutes, normalise=normalise,
                                sentence_end=sentence_end, config=config, stats=stats)
                fitted = [(l, i, got[(l, i)]) for l, i in keys]
            elif layer_fn is not None and keys:
                got = run_layer(layer_fn(keys[0][0]), {i: exs[(l, i)] for l, i in keys},
                                pad_token=pad_token, substitutes=substitutes, normalise=normalise,
                                sentence_end=sentence_end, config=config, stats=stats)
                fitted = [(l, i, got[i]) for l, i in keys]
            else:
                for layer, index in keys:
                    try:
                        r: Any = run_neuron(activation_fn(layer, index), exs[(layer, index)],
                                            pad_token=pad_token, substitutes=substitutes, normalise=normalise,
                                            sentence_end=sentence_end, config=config)
                    except ValueError as exc:  # no positive activation, no examples: record and go on
                        r = exc
                    fitted.append((layer, index, r))
            await _store_fitted(store, model_name, fitted, decode, summary)
            bar(len(keys))
            last_similar = await _refresh_similar(store, model_name, similar_threshold, similar_every_s, last_similar)
    finally:
        bar.close()
    if similar_threshold is not None:
        summary["similar"] = await update_similar(store, model_name, similar_threshold)
    return summary


async def _read_examples(store: Any, model_name: str, keys: Sequence[tuple[int, int]],
                         examples: Mapping[tuple[int, int], Sequence[Example]] | None, top_k: int
                         ) -> dict[tuple[int, int], list[Example]]:
    """The top ``top_k`` examples with tokens of each of ``keys`` that has any: from ``examples``,
    else read from the graph (one bounded query)."""
    if examples is None:
        rows = await store.query("n2g_top_examples_of", keys=[neuron_key(model_name, l, i) for l, i in keys],
                                 top_k=top_k)
        # Each example's tokens once, not once per neuron that peaks on it (a 6 min read of the
        # demo's 45,700 neurons carried the same 256 contexts 914k times).
        wanted = sorted({r["example"] for r in rows})
        tokens = {r["example"]: r for r in await store.query("n2g_example_tokens", keys=wanted)} if wanted else {}
        examples = examples_from_rows(rows, tokens)
    return {k: [e for e in examples[k] if e.tokens][:top_k] for k in keys if k in examples}


async def _store_fitted(store: Any, model_name: str, fitted: Iterable[tuple[int, int, Any]],
                        decode: Callable[[int], str] | None, summary: dict[str, Any]) -> None:
    """Write the fitted neurons (layer, index, NeuronResult); a failed one (an exception) is
    logged and counted in ``summary``."""
    ok = []
    for layer, index, r in fitted:
        if isinstance(r, Exception):
            log.warning("N2G %s/%d/%d skipped: %s", model_name, layer, index, r)
            summary["failed"].append((layer, index, str(r)))
        else:
            ok.append((layer, index, r))
    await write_neurons(store, model_name, ok, decode)
    summary["done"] += len(ok)


async def _refresh_similar(store: Any, model_name: str, threshold: float | None, every_s: float | None,
                           last: float) -> float:
    """Refresh the SIMILAR edges if ``every_s`` has passed since ``last``; when they were last made."""
    if threshold is None or every_s is None or time.monotonic() - last < every_s:
        return last
    await update_similar(store, model_name, threshold)
    return time.monotonic()


async def _store_sweep(store: Any, model_name: str, model_fn: LayerFn, keys: list[tuple[int, int]],
                       examples: Mapping[tuple[int, int], Sequence[Example]] | None, folder: str | Path,
                       summary: dict[str, Any], stats: LayerStats, stored: set[tuple[int, int]], *, top_k: int,
                       decode: Callable[[int], str] | None,
                       progress: bool, similar: float | None, similar_every_s: float | None, **fit: Any) -> None:
    """:func:`build_n2g`'s sweep: read the neurons' examples (bounded reads), sweep, store each
    block's finished neurons as it ends, but the ``stored`` ones (run_sweep empties its folder when
    the sweep ends)."""
    from neurograph.progress import Counter

    exs: dict[tuple[int, int], list[Example]] = {}
    for s in range(0, len(keys), 1024):
        exs.update(await _read_examples(store, model_name, keys[s:s + 1024], examples, top_k))
    bar = Counter(f"N2G sweep {model_name} ({len(exs)} neurons), blocks of contexts", enabled=progress)
    last_similar = t0 = time.monotonic()
    # Its [blocks done, blocks, when], on the model (one property per sweep: sweeps of shards run
    # side by side), for Model.n2gCoverage: a sweep stores most of its neurons near its end.
    mark = "n2g_sweep_" + hashlib.sha1(Path(folder).name.encode()).hexdigest()[:10]
    try:
        for block, blocks, done in run_sweep(model_fn, exs, stats=stats, checkpoint=folder, **fit):
            bar.total(blocks)
            await _store_fitted(store, model_name, [(l, i, r) for (l, i), r in sorted(done.items()) if (l, i) not in stored],
                                decode, summary)
            await store.query("set_model_props", key=model_key(model_name),
                              props={mark: [min(block + 1, blocks), blocks, int(time.time())]})
            if block >= 0:
                bar(1)
                if not progress:  # the background's log: a line per block instead of the bar
                    log.warning("N2G sweep %s: block %d of %d done after %.0f s, %d neurons stored so far",
                                model_name, block + 1, blocks, time.monotonic() - t0, summary["done"])
            last_similar = await _refresh_similar(store, model_name, similar, similar_every_s, last_similar)
    finally:
        bar.close()
