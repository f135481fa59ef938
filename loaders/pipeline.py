"""``neurograph build``: every analysis of a model, in order, into one graph.

    summary = await build(Settings.from_env(), model="smollm2-135m", n_tokens=65536)

1. activations  — one streaming pass: stats, histograms, max/min examples, token activations
2. composition, heads, tokens — weight-based edges (no data needed)
3. correlation  — streaming Pearson over the same contexts
4. n2g          — Neuron2Graph patterns for the most interesting neurons of each layer
5. topology     — roles and communities over the stored weight/correlation graph

Each step is idempotent and resumable (the harvest checkpoints; N2G skips finished neurons),
so an interrupted build is finished by running the same command again. The Model node
records the build's arguments and ``build_complete`` at the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from neurograph.config import Settings
from neurograph.domain import model_key
from neurograph.store import Store, open_store

from .memory import peak_rss_mb, release_memory, reset_peak

ANALYSES = ("activations", "composition", "heads", "tokens", "correlation", "n2g", "topology")
CONNECTIVITY = ("composition", "heads", "tokens", "correlation")


def _check(analyses: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(analyses))
    unknown = [a for a in chosen if a not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analyses {unknown}: choose from {', '.join(ANALYSES)}")
    return chosen


def _step_done(summary: dict[str, Any], step: str, started: float) -> None:
    """Record a step's time and peak memory, then free its temporaries before the next one."""
    summary["seconds"][step] = round(time.perf_counter() - started, 2)
    summary["peak_rss_mb"][step] = peak_rss_mb()
    release_memory()
    reset_peak()


def shard_layers(n_layers: int, layers: Sequence[int] | None, shard: tuple[int, int] | None) -> list[int] | None:
    """The layers a build computes: ``layers`` narrowed to ``shard`` (i, n): layer % n == i.
    None when that is every layer (an unsharded build)."""
    chosen = list(range(n_layers)) if layers is None else sorted({int(l) for l in layers})
    bad = [l for l in chosen if not 0 <= l < n_layers]
    if bad:
        raise ValueError(f"the model has layers 0..{n_layers - 1}, not {bad}")
    if shard is not None:
        chosen = [l for l in chosen if l % shard[1] == shard[0]]
    if not chosen:
        raise ValueError(f"no layer of 0..{n_layers - 1} is in {layers or 'all'} and shard {shard}")
    return None if chosen == list(range(n_layers)) else chosen


async def interesting_neurons(store: Store, model: str, n_layers: int, per_layer: int,
                              layers: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The ``per_layer`` most interesting neurons (harvest's ``interest`` score) of each layer."""
    chosen: list[tuple[int, int]] = []
    for layer in (layers if layers is not None else range(n_layers)):
        rows = await store.query("interesting_neurons", model=model, layer=layer, stat="interest",
                                 descending=True, limit=per_layer)
        chosen += [(r["n"]["layer"], r["n"]["index"]) for r in rows]
    return chosen


def neuron_fns(loaded: Any) -> Callable[[int, int], Callable[[list[list[int]]], Any]]:
    """(layer, index) -> that neuron's activation function over token sequences."""
    from loaders.activations import neuron_activation_fn

    return lambda layer, index: neuron_activation_fn(loaded, layer, index)


FAST_STAGES = ("prune", "base", "importance_fast", "variants")
"""N2G fit stages that ``--fast-dtype`` may run in a lower precision. Masking importance all in
bfloat16 lost held-out F1 (bench_n2g, 70 neurons: every stage in bfloat16 -.009 [-.021, -.001];
prune, base and variants only -.001 [-.003, +.000]), so its rows run on the fast copy
("importance_fast") and again in the main dtype where a decision could flip (:data:`IMPORTANCE_RECHECK`)."""

IMPORTANCE_RECHECK = 0.1
"""``N2GConfig.importance_recheck`` with a fast copy: the masked rows within 0.1 of the importance
threshold where read (22% of them) rerun in float32. bench_n2g, 48 neurons, margin audit: bfloat16
got 1 of 6,871 read decisions wrong beyond 0.05, none beyond 0.1; the same held-out F1 for every
neuron as float32 masking, 1.28x the neurons per CPU second."""


def layer_fns(loaded: Any, max_batch: int = 256, fast: Any = None) -> Callable[[int], Callable[[list[list[int]]], Any]]:
    """layer -> that layer's activation function over token sequences ([B, T, d_mlp]): batched
    N2G reads every neuron of the layer from one forward pass. With ``fast`` (a second copy of
    the model, e.g. in bfloat16) the :data:`FAST_STAGES` run on it."""
    from loaders.activations import neuron_activation_fn

    def make(layer: int) -> Callable[[list[list[int]]], Any]:
        fn = neuron_activation_fn(loaded, layer, max_batch=max_batch)
        if fast is not None:
            quick = neuron_activation_fn(fast, layer, max_batch=max_batch)
            fn.by_stage = {stage: quick for stage in FAST_STAGES}  # type: ignore[attr-defined]
        return fn

    return make


def model_fn(loaded: Any, fast: Any = None) -> Any:
    """The model-wide N2G function (``loaders.n2g.run_model``): neurons of every layer read from
    the same forward passes; with ``fast``, the :data:`FAST_STAGES` run on that copy. None for a
    model without a Hugging Face model under its bridge (then a layer at a time)."""
    from loaders.activations import model_activation_fn

    if getattr(loaded.bridge, "original_model", None) is None:
        return None
    fn = model_activation_fn(loaded)
    if fast is not None:
        quick = model_activation_fn(fast)
        fn.by_stage = {stage: quick for stage in FAST_STAGES}
    return fn


async def n2g_order(store: Store, model: str, n_layers: int, layers: Sequence[int] | None = None
                    ) -> list[tuple[int, int]]:
    """Every neuron of the model (or of ``layers``), the most interesting of every layer first:
    layer rank 0 of each layer, then rank 1, ... (harvest's ``interest_layer_rank``)."""
    ranked: list[tuple[int, int, int]] = []
    for layer in (layers if layers is not None else range(n_layers)):
        rows = await store.query("interesting_neurons", model=model, layer=layer, stat="interest",
                                 descending=True, limit=1 << 30)
        ranked += [(rank, r["n"]["layer"], r["n"]["index"]) for rank, r in enumerate(rows)]
    return [(l, i) for _, l, i in sorted(ranked)]


def n2g_config(fast: bool) -> Any:
    """The N2G step's settings (``fast``: with a fast copy of the model, masking rechecked)."""
    from loaders.n2g import N2GConfig

    return N2GConfig(n_substitutes=10, pivot_substitutes=40, importance_recheck=IMPORTANCE_RECHECK if fast else None)


def n2g_substitutes(loaded: Any, fast: Any = None) -> tuple[Any, int]:
    """The N2G step's substitutes (a :data:`loaders.n2g.SubstituteFn`, on ``fast`` where given)
    and its masking token."""
    from loaders.n2g import combined_substitutes, embedding_neighbours, lm_substitutes, token_substitutes
    from loaders.weights import model_weights

    dev = getattr(loaded, "device", "cpu")
    specials = {i for i in (loaded.bos_token_id, loaded.pad_token_id) if i is not None}
    specials |= set(getattr(loaded.tokenizer, "all_special_ids", None) or ())
    W_E = model_weights(loaded).W_E
    near = embedding_neighbours(W_E, k=20, exclude=specials)

    lm_model = fast if fast is not None else loaded

    def logits(seqs: list[list[int]]) -> Any:
        with torch.inference_mode():
            return lm_model.bridge(torch.tensor(seqs, dtype=torch.long, device=dev), return_type="logits")

    hf = getattr(lm_model.bridge, "original_model", None)
    if hf is not None and getattr(hf, "base_model", None) is not None and hf.get_output_embeddings() is not None:
        def logits_at(seqs: list[list[int]], positions: list[list[int]]) -> Any:
            """Next-token logits at these positions only: the final hidden states, then the
            unembedding of the asked rows (a monotone soft cap, where a model has one, keeps
            the top tokens)."""
            with torch.inference_mode():
                hidden = hf.base_model(input_ids=torch.tensor(seqs, dtype=torch.long, device=dev),
                                       use_cache=False).last_hidden_state
                rows = torch.tensor([b for b, ps in enumerate(positions) for _ in ps], device=hidden.device)
                cols = torch.tensor([p for ps in positions for p in ps], device=hidden.device)
                return hf.get_output_embeddings()(hidden[rows, cols]).float()

        logits.at = logits_at  # type: ignore[attr-defined]

    # Substitutes, in turns: the model's own likeliest tokens at the position that
    # resemble the original (the causal analogue of the papers' masked LM; the activation
    # functions see no prefix, so position 0 takes embedding neighbours) and the plain
    # embedding neighbours (case and space variants); 5 + 5 per context token, 20 + 20 at
    # the pivot, as bench/bench_n2g.py measures them.
    lm = lm_substitutes(logits, 20, exclude=specials, fallback=near, embeddings=W_E, pool=200,
                        pad=loaded.pad_token_id)
    subs = combined_substitutes(lm, token_substitutes(near))
    # Mask with a plain space: a special token (end of text) reads as a document break and
    # marks too many tokens important (measured: held-out F1 .27 vs .32 with the space).
    space = loaded.to_tokens(" ")
    mask = space[0] if len(space) == 1 else loaded.pad_token_id
    return subs, mask


async def run_n2g(store: Store, loaded: Any, *, n2g_neurons: int | None = 8, layers: Sequence[int] | None = None,
                  top_k: int = 20, group: int = 64, force: bool = False, progress: bool = True,
                  similar_every_s: float | None = None, fast: Any = None, sweep: Path | None = None,
                  contexts_per_block: int = 4, sweep_worker: tuple[int, int] | None = None) -> dict[str, Any]:
    """The N2G step: pattern graphs for the ``n2g_neurons`` most interesting neurons of each
    layer (None: every neuron, the most interesting of every layer first), fitted ``group``
    neurons at a time, of any layers, with shared forward passes, on the model's device and dtype.
    Resumable: neurons already done are skipped, and each group is stored when fitted. ``fast``:
    a second copy of the model (e.g. bfloat16) for the :data:`FAST_STAGES` and the substitutes.
    ``sweep`` (a folder for its kept blocks): all the neurons at once, a block of contexts at a time
    (:func:`loaders.n2g.sweep.run_sweep`; the same graphs, 3.8x less CPU per neuron on the demo's
    corpus, bench_n2g_sweep)."""
    from loaders.n2g import build_n2g

    name = loaded.name
    if n2g_neurons is None:
        neurons = await n2g_order(store, name, loaded.info.n_layers, layers)
    else:
        neurons = await interesting_neurons(store, name, loaded.info.n_layers, n2g_neurons, layers)
    subs, mask = n2g_substitutes(loaded, fast)
    # Batched: ``group`` neurons of any layers share every forward pass, read at each of their
    # layers (the same graphs as one neuron at a time; bench/bench_n2g.py measures both);
    # neurons of different layers fire on the same contexts, so most of their variants are the
    # same sequences. build_n2g reads the examples of the neurons it fits, a group at a time.
    wide = model_fn(loaded, fast)
    if sweep is not None and wide is None:
        raise ValueError(f"{name}: the N2G sweep needs the model-wide path (a Hugging Face model under the bridge)")
    fns = {"model_fn": wide} if wide is not None else {"layer_fn": layer_fns(loaded, fast=fast)}
    return await build_n2g(
        store, name, **fns, pad_token=mask, neurons=neurons, order=neurons,
        group=group, substitutes=subs, decode=lambda i: loaded.token_strs([i])[0], force=force,
        config=n2g_config(fast is not None), top_k=top_k, progress=progress,
        similar_every_s=similar_every_s, sweep=sweep,
        contexts_per_block=contexts_per_block, sweep_worker=sweep_worker)


def sweep_folder(settings: Settings, model: str, layers: Sequence[int] | None) -> Path:
    """Where a sweep over these layers keeps its blocks (one folder per shard)."""
    part = "all" if layers is None else "layers-" + "-".join(str(l) for l in sorted(layers))
    return Path(settings.data_dir) / "n2g-sweep" / f"{model}-{part}"


async def n2g(settings: Settings, *, model: str = "smollm2-135m", n2g_neurons: int | None = None,
              layers: Sequence[int] | None = None, device: Any = "cpu", dtype: Any = None, group: int = 64,
              top_k: int = 20, force: bool = False, progress: bool = True,
              similar_every_s: float | None = 1800.0, store: Store | None = None,
              fast_dtype: Any = None, sweep: bool = False, contexts_per_block: int = 4,
              worker: tuple[int, int] | None = None) -> dict[str, Any]:
    """``neurograph n2g``: only the N2G step, for a model whose harvest is stored (by default every
    neuron; resumable; ``layers`` restricts it to a shard). The demo runs it in the background.
    ``fast_dtype`` (e.g. ``bfloat16``, ``auto``): a second copy of the model in that precision runs
    the :data:`FAST_STAGES` and the substitutes; none when it resolves to ``dtype``. ``sweep``: all the
    neurons at once, block by block of contexts, its blocks kept under the data dir (``n2g-sweep/``);
    ``worker`` (i, n): one of n processes sweeping it together (:func:`loaders.n2g.sweep.run_sweep`)."""
    from loaders.device import check_pair, resolve_device, resolve_dtype
    from loaders.model import load_model

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev) if dtype is not None else None
    check_pair(dev, dt or resolve_dtype("float32"))
    own_store = store is None
    store = store or await open_store(settings)
    try:
        t = time.perf_counter()
        loaded = load_model(model, device=dev, dtype=dt)
        fast = None
        fdt = resolve_dtype(fast_dtype, dev) if fast_dtype is not None else None
        if fdt is not None and fdt != (dt or torch.float32):
            check_pair(dev, fdt)
            fast = load_model(model, device=dev, dtype=fdt)
        folder = sweep_folder(settings, model, layers) if sweep else None
        summary = await run_n2g(store, loaded, n2g_neurons=n2g_neurons, layers=layers, top_k=top_k, group=group,
                                force=force, progress=progress, similar_every_s=similar_every_s, fast=fast,
                                sweep=folder, contexts_per_block=contexts_per_block,
                                sweep_worker=worker if sweep else None)
        summary["fast_dtype"] = None if fast is None else str(fdt).removeprefix("torch.")
        summary["seconds"] = round(time.perf_counter() - t, 2)
        summary["peak_rss_mb"] = peak_rss_mb()
        return summary
    finally:
        if own_store:
            await store.close()


async def build(settings: Settings, *, model: str = "smollm2-135m", dataset: str = "default",
                n_tokens: int = 65536, ctx_len: int = 64, top_k: int = 20, edge_k: int = 10,
                analyses: Iterable[str] = ANALYSES, layers: Sequence[int] | None = None,
                n2g_neurons: int | None = 8, batch_size: int = 8, corr_tokens: int | None = None,
                store: Store | None = None, device: Any = "cpu", dtype: Any = None, n2g_group: int = 64,
                random_k: int = 0, quantile_k: int = 0, quantile_bins: int = 10, seed: int = 0,
                shard: tuple[int, int] | None = None,
                loaded: Any = None, progress: bool = True) -> dict[str, Any]:
    """Run the chosen analyses of ``model`` over ``n_tokens`` of ``dataset`` into the graph.

    ``loaded`` (a LoadedModel) and ``store`` may be passed in (tests, notebooks); otherwise the
    model is loaded by name and the store opened from ``settings``. ``device`` (``auto``,
    ``cpu``, ``cuda``, ``mps``) and ``dtype`` (``float32``, ``bfloat16``, ``float16``) say
    where and in what precision every step that runs the model computes (harvest, correlation,
    N2G); the weight-based steps (composition, heads, tokens) run on ``device`` from a float32
    copy of the weights. A device asked for and missing is an error before anything is
    loaded or written. ``random_k``: also store that many uniformly random contexts per neuron
    (``ACTIVATES_ON {kind: 'random'}``, OpenAI's random sample). ``n2g_neurons``: N2G graphs per layer, the most interesting first; None
    for every neuron (fitted ``n2g_group`` neurons at a time, every layer read from the same forward passes).
    ``quantile_k``/``quantile_bins``: examples sampled per interval of each neuron's range
    (``ACTIVATES_ON {kind: 'quantile'}``, Neuronpedia's quantiles; a second corpus pass).

    Shards: ``layers`` (and ``shard=(i, n)``: the layers with ``layer % n == i``) restrict every
    compute step to the neurons of those layers; each edge is written by the shard of the
    neuron whose list selected it (see :mod:`loaders.shards`), so shards run in any order or
    at once into one store and give the graph one run gives. A sharded build skips ``n2g`` and
    ``topology``, which need every layer's results: run them once all shards are in
    (``build --analyses topology``, then ``neurograph n2g --shard i/n`` per machine).
    """
    from loaders.build import build_from_model
    from loaders.corpus import corpus_contexts
    from loaders.model import load_model

    from loaders.device import check_pair, resolve_device, resolve_dtype

    chosen = _check(analyses)
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard {shard[0]}/{shard[1]}: need 0 <= i < n")
    dev = resolve_device(device)  # a missing device fails here, before the store or the model
    dt = resolve_dtype(dtype, dev) if dtype is not None else None
    check_pair(dev, dt or resolve_dtype("float32"))
    own_store = store is None
    store = store or await open_store(settings)
    summary: dict[str, Any] = {"model": model, "analyses": chosen, "seconds": {}, "peak_rss_mb": {}}
    reset_peak()
    try:
        t = time.perf_counter()
        loaded = loaded or load_model(model)
        name = loaded.name
        owned = shard_layers(loaded.info.n_layers, layers, shard)
        if owned is not None:
            skipped = [a for a in chosen if a in ("n2g", "topology")]
            chosen = [a for a in chosen if a not in skipped]
            summary.update(analyses=chosen, layers=owned)
            if skipped:
                summary["skipped"] = {a: "needs every shard's results: run it once all shards are in" for a in skipped}
        weights = None
        if any(k in chosen for k in ("composition", "heads", "tokens")) and dt not in (None, torch.float32):
            from loaders.weights import model_weights

            weights = model_weights(loaded)  # float32: place() gives the bridge new tensors
        if dev.type != "cpu" or dt is not None:
            loaded.place(dev, dt)
        summary["device"], summary["dtype"] = str(dev), str(dt or torch.float32).removeprefix("torch.")
        _step_done(summary, "load", t)
        ctx = None
        if "activations" in chosen or "correlation" in chosen:
            ctx = corpus_contexts(loaded, dataset, n_tokens, ctx_len)
        if "activations" in chosen:
            t = time.perf_counter()
            checkpoints = Path(settings.data_dir) / "checkpoints"
            summary["activations"] = await build_from_model(store, loaded, ctx, top_k=top_k, batch_size=batch_size,
                                                            checkpoint_dir=checkpoints, progress=progress,
                                                            random_k=random_k, quantile_k=quantile_k,
                                                            quantile_bins=quantile_bins, seed=seed, layers=owned)
            _step_done(summary, "activations", t)
        kinds = [k for k in CONNECTIVITY if k in chosen]
        if kinds:
            from loaders.connectivity import build_connectivity

            t = time.perf_counter()
            corr_ctx = None
            if ctx is not None:
                # All-pairs correlation costs N^2 per token, far more than the forward pass:
                # corr_tokens lets it read only the first part of the corpus.
                n_ctx = len(ctx) if corr_tokens is None else max(1, corr_tokens // ctx_len)
                corr_ctx = ctx.tokens[:n_ctx]
            summary["connectivity"] = await build_connectivity(
                store, loaded, corr_ctx, kinds=kinds, k=edge_k, k_heads=edge_k,
                k_tokens=2 * edge_k, batch_size=batch_size, progress=progress, device=dev, weights=weights,
                layers=owned)
            _step_done(summary, "connectivity", t)
        if "n2g" in chosen and (n2g_neurons is None or n2g_neurons > 0):
            t = time.perf_counter()
            # Every neuron: the sweep (neurons sharing contexts share the passes; resumable from its blocks).
            summary["n2g"] = await run_n2g(store, loaded, n2g_neurons=n2g_neurons, layers=layers, top_k=top_k,
                                           group=n2g_group, progress=progress,
                                           sweep=sweep_folder(settings, loaded.name, layers) if n2g_neurons is None else None)
            _step_done(summary, "n2g", t)
        if "topology" in chosen:
            from neurograph.topology import compute_topology

            t = time.perf_counter()
            if "activations" not in chosen:  # the run after a sharded build: model-wide interest ranks
                from loaders.build import refresh_interest

                await refresh_interest(store, name)
            summary["topology"] = await compute_topology(store, name, progress=progress)
            _step_done(summary, "topology", t)
        args = {"dataset": str(dataset), "n_tokens": n_tokens, "ctx_len": ctx_len, "top_k": top_k,
                "edge_k": edge_k, "analyses": chosen, "n2g_neurons": n2g_neurons, "corr_tokens": corr_tokens,
                "device": str(dev), "dtype": summary.get("dtype"), "random_k": random_k,
                "quantile_k": quantile_k, "quantile_bins": quantile_bins}
        built_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if owned is not None:
            # one shard of several: the build is complete once the closing unsharded run is done
            done = await store.query("add_build_shard", key=model_key(name), shard=",".join(map(str, owned)))
            summary["shards_done"] = done[0]["shards"] if done else []
        else:
            await store.query("set_model_props", key=model_key(name), props={
                "build_complete": True, "build_args": repr(args), "built_at": built_at})
        await store.compact()
        return summary
    finally:
        if own_store:
            await store.close()
