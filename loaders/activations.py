"""MLP neuron activations: a streaming pass over contexts and per-neuron statistics.

    >>> model = load_model("smollm2-135m")
    >>> ctx = corpus_contexts(model, "default", n_tokens=65536)
    >>> result = harvest(model, ctx.tokens, top_k=20, checkpoint_dir=Path("ckpt"))
    >>> result.kurt[3, 17], result.top_max_ctx[3, 17, :5]

``iter_mlp_activations`` yields ``blocks.{l}.mlp.hook_post`` for every layer, one batch at a
time; :class:`Harvest` folds batches into per-neuron statistics (moments, fraction active,
extremes, a fixed-range histogram, top-k max/min contexts with their per-token activations,
per-token means) whose state can be saved and restored, so an interrupted pass resumes.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from neurograph.progress import Counter

if TYPE_CHECKING:
    from .model import LoadedModel

QUANTILE_LEVELS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
# Histogram bins follow the float32 bit pattern: 8 bins per octave (the top 3 mantissa bits,
# 6-12 % wide) for 2**-10 <= |x| < 2**6, one bin each side of 0 below that; |x| >= 64 is counted
# in the end bins (max/min stay exact). A 4096-entry table maps (sign, exponent, 3 mantissa
# bits) to a bin, so binning is a shift and a gather instead of a search.
HIST_MIN_EXP = -10
HIST_MAX_EXP = 6
HIST_PER_OCTAVE = 8
_COL_CHUNK = 1024   # neurons per chunk: every temporary of a batch stays in cache
FORMAT_VERSION = 3  # 3: layers (shards) and the quantile pass


def histogram_edges() -> np.ndarray:
    """The fixed, symmetric bin edges (float32, 259 edges, 0 among them) shared by every neuron
    of every model. Bins are [e_i, e_i+1) for x >= 0 and (e_i, e_i+1] for x < 0 (by magnitude)."""
    pos = [2.0 ** e * (1 + k / HIST_PER_OCTAVE) for e in range(HIST_MIN_EXP, HIST_MAX_EXP)
           for k in range(HIST_PER_OCTAVE)] + [2.0 ** HIST_MAX_EXP]
    return np.array([-p for p in reversed(pos)] + [0.0] + pos, dtype=np.float32)


def histogram_bins(x: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
    """Reference binning (numpy searchsorted) with the convention of :func:`histogram_edges`."""
    edges = histogram_edges() if edges is None else edges
    x = np.asarray(x, dtype=np.float32)
    b = np.where(np.signbit(x), np.searchsorted(edges, x, side="left") - 1,
                 np.searchsorted(edges, x, side="right") - 1)
    return np.clip(b, 0, edges.size - 2)


def _bin_table(edges: np.ndarray) -> torch.Tensor:
    """Bin of every float32 whose top 12 bits (sign, exponent, 3 mantissa bits) are ``code``."""
    codes = np.arange(4096, dtype=np.int64)
    mags = ((codes & 0x7FF) << 20).astype(np.uint32).view(np.float32)  # magnitude lower bound
    neg = (codes >> 11).astype(bool)
    b = np.where(neg, np.searchsorted(edges, -mags, side="left") - 1,
                 np.searchsorted(edges, mags, side="right") - 1)
    return torch.as_tensor(np.clip(b, 0, edges.size - 2), dtype=torch.long)


# --- forward passes ----------------------------------------------------------------------
class _Stop(Exception):
    """Raised from the last hook we need: the rest of the forward pass is skipped."""


def _capture(model: "LoadedModel", tokens: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """Run ``tokens`` [B, T] and return ``hook_post`` of ``layers`` as [B, T, len(layers), d_mlp]
    float32 (a fresh tensor). Stops the forward pass after the last requested layer's MLP."""
    B, T = tokens.shape
    out = torch.empty((B, T, len(layers), model.info.d_mlp), dtype=torch.float32)
    last = max(layers)

    def make(slot: int, layer: int) -> Callable[..., Any]:
        def hook(t: torch.Tensor, hook: Any = None) -> None:
            out[:, :, slot, :].copy_(t)
            if layer == last:
                raise _Stop

        return hook

    hooks = [(f"blocks.{l}.mlp.hook_post", make(i, l)) for i, l in enumerate(layers)]
    device = getattr(model, "device", "cpu")
    if str(device) != "cpu":
        tokens = tokens.to(device)
    with torch.inference_mode():
        try:
            model.bridge.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
        except _Stop:
            pass
    return out


def _batches(model: "LoadedModel", contexts: torch.Tensor, batch_size: int, start: int,
             layers: list[int] | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    layers = list(range(model.info.n_layers)) if layers is None else list(layers)
    contexts = torch.as_tensor(contexts, dtype=torch.long)
    for first in range(start, int(contexts.shape[0]), batch_size):
        toks = contexts[first:first + batch_size]
        yield first, toks, _capture(model, toks, layers)


def iter_mlp_activations(model: "LoadedModel", contexts: torch.Tensor, batch_size: int = 8, start: int = 0
                         ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(first context index, tokens [B, T], acts [n_layers, B, T, d_mlp] float32)`` from
    ``blocks.{l}.mlp.hook_post``, batch by batch from context ``start``; no gradients, one batch
    in memory at a time. ``acts`` is a view of a fresh [B, T, L, D] buffer (not contiguous)."""
    for first, toks, buf in _batches(model, contexts, batch_size, start):
        yield first, toks, buf.permute(2, 0, 1, 3)


def neuron_activation_fn(model: "LoadedModel", layer: int, index: int | None = None, *,
                         max_batch: int = 64) -> Callable[[list[list[int]]], np.ndarray]:
    """A function from token sequences to ``layer``'s MLP activations: [B, T_max, d_mlp] (numpy),
    or [B, T_max] for neuron ``index`` alone.

    Sequences are right-padded (a causal model's earlier positions never see the padding);
    positions past a sequence's end are 0. The forward pass stops after ``layer``'s MLP and runs
    ``max_batch`` sequences at a time: N2G asks for thousands of variants at once, and one
    forward over all of them peaked at 15 GB on SmolLM2."""
    if not 0 <= layer < model.info.n_layers:
        raise ValueError(f"{model.name} has layers 0..{model.info.n_layers - 1}, not {layer}")
    if index is not None and not 0 <= index < model.info.d_mlp:
        raise ValueError(f"{model.name} has neurons 0..{model.info.d_mlp - 1} per layer, not {index}")
    pad = model.pad_token_id
    width = () if index is not None else (model.info.d_mlp,)

    def fn(seqs: list[list[int]]) -> np.ndarray:
        T = max((len(s) for s in seqs), default=0)
        out = np.zeros((len(seqs), T, *width), dtype=np.float32)
        for first in range(0, len(seqs), max_batch):
            chunk = seqs[first:first + max_batch]
            t = max(len(s) for s in chunk)
            toks = torch.full((len(chunk), t), pad, dtype=torch.long)
            for i, s in enumerate(chunk):
                toks[i, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
            acts = _capture(model, toks, [layer])[:, :, 0, :]
            acts = (acts if index is None else acts[..., index]).numpy()
            for i, s in enumerate(chunk):
                out[first + i, :len(s)] = acts[i, :len(s)]
        return out

    if index is None and getattr(model.bridge, "original_model", None) is not None:
        fn.packed = _packed_fn(model, layer, fn)  # type: ignore[attr-defined]
    return fn


_PLAIN: "weakref.WeakKeyDictionary[Any, tuple[Any, Any]]" = weakref.WeakKeyDictionary()


def _plain_view(model: "LoadedModel") -> tuple[Any, list[Any]] | None:
    """The Hugging Face model under the bridge rebuilt without the bridge's wrappers, sharing
    its weights (no copy), and per layer the module whose input is ``hook_post`` (the down
    projection); None when the bridge's modules do not map onto a plain model. Why: the bridge
    reimplements attention step by step (float32 softmax, casts) for its pattern hooks, which
    costs half of a bfloat16 pass; the plain model runs PyTorch's fused attention (SDPA) in
    low precision and the same eager attention as the bridge in float32 (bit-identical)."""
    hf = model.bridge.original_model
    param = next(hf.parameters())
    key = (param.dtype, param.device)
    hit = _PLAIN.get(hf)
    if hit is not None and hit[0] == key:
        return hit[1]
    strip = "._original_component"
    cfg = copy.deepcopy(hf.config)
    cfg._attn_implementation = "eager" if param.dtype == torch.float32 else "sdpa"
    try:
        with torch.device("meta"):
            plain = type(hf)(cfg)
    except Exception:  # an architecture that cannot be rebuilt from its config: the bridge path
        _PLAIN[hf] = (key, None)
        return None
    src = {n.replace(strip, ""): t for n, t in hf.named_parameters(remove_duplicate=False)}
    src.update((n.replace(strip, ""), t) for n, t in hf.named_buffers(remove_duplicate=False))
    mods = dict(plain.named_modules())
    names = {id(m): n.replace(strip, "") for n, m in hf.named_modules(remove_duplicate=False)
             if n.replace(strip, "") in mods}
    view = None
    try:
        for n, _t in [*plain.named_parameters(remove_duplicate=False), *plain.named_buffers(remove_duplicate=False)]:
            owner, _, leaf = n.rpartition(".")
            slot = mods[owner]._parameters if leaf in mods[owner]._parameters else mods[owner]._buffers
            slot[leaf] = src[n]
        view = (plain.eval(), [mods[names[id(b.mlp.out.original_component)]] for b in model.bridge.blocks])
    except (KeyError, AttributeError):  # a weight or the down projection not found: the bridge path
        pass
    _PLAIN[hf] = (key, view)
    return view


def _capture_packed(model: "LoadedModel", ids: np.ndarray, pos: np.ndarray, mask: np.ndarray,
                    want: int | dict[int, list[int]], plain: bool = True) -> Any:
    """``hook_post`` for packed token trees: the Hugging Face model (see :func:`_plain_view`;
    under the bridge with ``plain`` False or when there is none), called with a 4D attention
    mask and position ids, stopped after the deepest layer asked. ``want`` a layer: its [R, n,
    d_mlp]; {layer: columns}: {layer: [R, n, len(columns)]}, only those neurons copied off the
    device."""
    bridge = model.bridge
    device = getattr(model, "device", "cpu")
    dtype = next(bridge.original_model.parameters()).dtype
    layers = {want: None} if isinstance(want, int) else want
    last = max(layers)
    grabbed: dict[int, torch.Tensor] = {}

    def keep(layer: int, t: torch.Tensor, idx: torch.Tensor | None) -> None:
        grabbed[layer] = (t if idx is None else t.index_select(-1, idx)).detach().to("cpu", torch.float32)
        if layer == last:
            raise _Stop

    def index(cols: list[int] | None) -> torch.Tensor | None:
        return None if cols is None else torch.tensor(cols, dtype=torch.long, device=device)

    add = torch.zeros(mask.shape, dtype=dtype).masked_fill_(torch.from_numpy(~mask), torch.finfo(dtype).min)
    inputs = dict(input_ids=torch.from_numpy(ids).to(device), position_ids=torch.from_numpy(pos).to(device),
                  attention_mask=add[:, None].to(device), use_cache=False)
    view = _plain_view(model) if plain else None
    if view is not None:
        net, outs = view
        handles = [outs[layer].register_forward_pre_hook(
            lambda _m, args, layer=layer, idx=index(cols): keep(layer, args[0], idx))
            for layer, cols in layers.items()]
        run = lambda: net.base_model(**inputs)  # noqa: E731  (no head: the pass stops before it)
        undo = lambda: [h.remove() for h in handles]  # noqa: E731
    else:
        points = [bridge.blocks[layer].mlp.hook_post for layer in layers]
        for point, (layer, cols) in zip(points, layers.items()):
            point.add_hook(lambda t, hook=None, layer=layer, idx=index(cols): keep(layer, t, idx))
        run = lambda: bridge.original_model(**inputs)  # noqa: E731
        undo = lambda: [point.remove_hooks("fwd") for point in points]  # noqa: E731
    try:
        with torch.inference_mode():
            run()
    except _Stop:
        pass
    finally:
        undo()
    if last not in grabbed:
        raise RuntimeError(f"{model.name}: blocks.{last}.mlp.hook_post did not fire in the packed forward pass")
    return grabbed[last] if isinstance(want, int) else grabbed


def model_activation_fn(model: "LoadedModel") -> Callable[..., Any]:
    """The model-wide function of ``loaders.n2g.run_model``: ``fn.packed_layers(rows, want)``
    gives {layer: [R, n, len(columns)]} for packed token trees, every asked layer from one
    forward pass. Checked against the plain forward pass on first use like :func:`_packed_fn`;
    a model that cannot run packed trees is an error here (``run_layer`` has the plain path)."""
    if getattr(model.bridge, "original_model", None) is None:
        raise ValueError(f"{model.name}: the model-wide N2G path needs a Hugging Face model under the bridge")
    check = _packed_fn(model, 0, neuron_activation_fn(model, 0))
    checked: list[bool] = []

    def fn(seqs: list[list[int]]) -> Any:
        raise NotImplementedError("the model-wide function runs packed token trees only")

    def packed_layers(rows: list, want: dict[int, list[int]]) -> dict[int, Any]:
        from loaders.n2g.batched import packed_inputs

        if not checked:  # the first call compares packed with plain once (NotImplementedError if they differ)
            check([rows[0]])
            checked.append(True)
        return _capture_packed(model, *packed_inputs(rows, pad=model.pad_token_id), want)

    fn.packed_layers = packed_layers  # type: ignore[attr-defined]
    return fn


def _packed_fn(model: "LoadedModel", layer: int, plain: Callable[[list[list[int]]], np.ndarray]
               ) -> Callable[[list], Any]:
    """Packed token trees -> [R, n, d_mlp] (see ``loaders.n2g.batched.pack``): a shared prefix runs
    once for all the variants that branch off it. Checked against the plain forward pass on first
    use; a model whose forward ignores a 4D mask or position ids (the check differs) falls back to
    plain batches, which give the same numbers, with a warning."""
    from loaders.n2g.batched import packed_inputs

    state: dict[str, Any] = {}

    def packed(rows: list) -> Any:
        ids, pos, mask = packed_inputs(rows, pad=model.pad_token_id)
        if "ok" not in state:
            probe = [[int(t) for t in ids[0, :3]] or [0]]
            probe = [probe[0], probe[0][:-1] + [probe[0][0]]] if len(probe[0]) > 1 else probe
            ref = plain(probe)
            from loaders.n2g.batched import pack

            r, where = pack([tuple(p) for p in probe])
            got = _capture_packed(model, *packed_inputs(r, pad=model.pad_token_id), layer).numpy()
            err = max(float(np.abs(got[w[0]][w[1]] - ref[j, :len(probe[j])]).max()) for j, w in enumerate(where))
            scale = max(float(np.abs(ref).max()), 1e-3)
            state["ok"] = err <= 2e-2 * scale
            if not state["ok"]:
                warnings.warn(f"{model.name}: packed forward passes differ from plain ones ({err:.3g}); "
                              "N2G runs plain batches", stacklevel=2)
        if not state["ok"]:
            raise NotImplementedError
        return _capture_packed(model, ids, pos, mask, layer)

    return packed

    return fn


# --- the accumulator ---------------------------------------------------------------------
def _order_key(vals: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """An int64 that sorts like (value, then the earlier context): float32 bits made monotone in
    the high half, the inverted context index in the low half. Unique per context."""
    bits = vals.contiguous().view(torch.int32)
    ordered = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).to(torch.int64)
    return (ordered << 32) | (0x7FFFFFFF - ctx)


def _random_key(ctx: torch.Tensor, cols: int | torch.Tensor, salt: int = 0) -> torch.Tensor:
    """[B, n] float32 in [0, 1): a fixed pseudo-random number per (context, neuron), the same in
    every run and for every batch size, so the K contexts with the largest key are a uniform
    random sample of each neuron's contexts (OpenAI's ``random_sample``), chosen in one pass.
    ``cols``: the neurons' global ids (``layer * d_mlp + index``; an int n means 0..n-1), so a
    shard of layers draws what the whole model would; ``salt`` gives another, independent draw."""
    cols = torch.arange(cols, dtype=torch.int64) if isinstance(cols, int) else cols.to(torch.int64)
    x = (ctx.to(torch.int64)[:, None] * 0x9E3779B1 + cols[None, :] * 0x85EBCA77
         + 0x27D4EB2F + salt * 0x165667B1) & 0xFFFFFFFF
    for shift, mul in ((15, 0x2C1B3C6D), (12, 0x297A2D39), (15, 0x7FEB352D)):
        x = ((x ^ (x >> shift)) * mul) & 0xFFFFFFFF
    return ((x >> 8).to(torch.float32) / float(1 << 24))


class _TopK:
    """Per neuron, the K contexts with the largest ``value`` (one entry per context), with the
    pivot position and the neuron's activations over the whole context. Slots are unordered
    while streaming (a new entry replaces the current minimum) so stored per-token activations
    never move; :meth:`sorted` orders them at the end."""

    def __init__(self, k: int, n: int, ctx_len: int) -> None:
        self.vals = torch.full((k, n), -math.inf, dtype=torch.float32)
        self.ctx = torch.full((k, n), -1, dtype=torch.long)
        self.pivot = torch.zeros((k, n), dtype=torch.long)
        self.acts = torch.zeros((k, n, ctx_len), dtype=torch.float32)

    def update(self, first: int, values: torch.Tensor, pivots: torch.Tensor, per_token: torch.Tensor) -> None:
        """values/pivots [B, n]; per_token [B, T, n] (the neuron's activation at every position)."""
        K, B = self.vals.shape[0], values.shape[0]
        cand = values > self.vals.min(dim=0).values  # strictly: on ties the earlier context stays
        cols = cand.any(dim=0).nonzero().squeeze(1)
        if cols.numel() == 0:
            return
        C = cols.numel()
        new = torch.where(cand[:, cols], values[:, cols], -math.inf)
        ctx = torch.cat([self.ctx[:, cols], (first + torch.arange(B))[:, None].expand(B, C)])
        key = _order_key(torch.cat([self.vals[:, cols], new]), ctx)
        chosen = torch.zeros(key.shape, dtype=torch.bool).scatter_(0, torch.topk(key, K, dim=0).indices, True)
        # Keys are unique, so the K best are well defined. Each column frees as many old slots
        # as it takes batch entries; pair them in order (nonzero walks column by column).
        freed = (~chosen[:K]).T.nonzero()
        taken = chosen[K:].T.nonzero()
        if freed.shape[0] == 0:
            return
        c = cols[freed[:, 0]]
        slot, b = freed[:, 1], taken[:, 1]
        self.vals[slot, c] = values[b, c]
        self.ctx[slot, c] = first + b
        self.pivot[slot, c] = pivots[b, c]
        self.acts[slot, c, :] = per_token[b, :, c]

    def sorted(self) -> tuple[np.ndarray, ...]:
        """(values, ctx, pivot, acts) as [n, K(, T)] numpy, best first (ties: lower context first)."""
        vals, ctx = self.vals.numpy(), self.ctx.numpy()
        order = np.lexsort((np.where(ctx < 0, np.iinfo(np.int64).max, ctx), -vals.astype(np.float64)), axis=0)
        take = lambda a: np.take_along_axis(a, order, axis=0).T  # noqa: E731
        acts = np.take_along_axis(self.acts.numpy(), order[:, :, None], axis=0).transpose(1, 0, 2)
        return take(vals), take(ctx), take(self.pivot.numpy()), acts

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.vals": self.vals, f"{prefix}.ctx": self.ctx, f"{prefix}.pivot": self.pivot,
                f"{prefix}.acts": self.acts}

    def load(self, prefix: str, state: dict[str, torch.Tensor]) -> None:
        self.vals, self.ctx = state[f"{prefix}.vals"], state[f"{prefix}.ctx"]
        self.pivot, self.acts = state[f"{prefix}.pivot"], state[f"{prefix}.acts"]


class Harvest:
    """Streaming per-neuron statistics over all layers (neurons flattened to ``layer*d_mlp+i``).

        >>> h = Harvest(n_layers=2, d_mlp=128, ctx_len=64, top_k=20, token_ids=[5, 9, 11])
        >>> for first, toks, acts in iter_mlp_activations(model, contexts):
        ...     h.update(first, toks, acts.permute(1, 2, 0, 3))   # acts as [B, T, L, D]
        >>> result = h.result()
        >>> h.save("ckpt.pt"); h2 = Harvest.load("ckpt.pt")       # resumable

    ``skip`` leading positions of each context (the BOS) are left out of every statistic and
    of the pivot choice, but kept in the stored per-token activations. Moments are float64 sums
    of ``x - shift`` (shift = the first batch's mean, for numerical stability); per-token sums
    are float32 scatter-adds into [tracked tokens, neurons].
    """

    def __init__(self, n_layers: int, d_mlp: int, ctx_len: int, *, top_k: int = 20,
                 token_ids: Any = (), token_top_k: int | None = None, skip: int = 0, random_k: int = 0,
                 layers: Any = None, quantile_k: int = 0, quantile_bins: int = 10, seed: int = 0) -> None:
        self.n_layers, self.d_mlp, self.ctx_len = int(n_layers), int(d_mlp), int(ctx_len)
        self.top_k, self.skip, self.random_k = int(top_k), int(skip), int(random_k)
        self.token_top_k = int(token_top_k if token_top_k is not None else top_k)
        # the layers this harvest keeps (a shard: --layers / --shard); n_layers counts only these
        self.layers = [int(l) for l in (layers if layers is not None else range(self.n_layers))]
        if len(self.layers) != self.n_layers:
            raise ValueError(f"{len(self.layers)} layers given for n_layers={self.n_layers}")
        n = self.n_layers * self.d_mlp
        self.edges = torch.as_tensor(histogram_edges())
        nb = self.edges.numel() - 1
        self.n_tokens = 0        # token positions counted
        self.next_index = 0      # contexts consumed
        self.shift = torch.zeros(n, dtype=torch.float64)
        self.sums = torch.zeros((4, n), dtype=torch.float64)
        self.n_active = torch.zeros(n, dtype=torch.long)
        self.vmax = torch.full((n,), -math.inf, dtype=torch.float32)
        self.vmin = torch.full((n,), math.inf, dtype=torch.float32)
        self.hist = torch.zeros((n, nb), dtype=torch.long)
        self._table: torch.Tensor | None = None
        self.top_max = _TopK(self.top_k, n, self.ctx_len)
        self.top_min = _TopK(self.top_k, n, self.ctx_len)  # on negated values
        self.top_rand = _TopK(self.random_k, n, self.ctx_len)  # on a random key: a uniform sample
        # The second pass (quantile examples): per neuron and interval of (0, max], a uniform
        # sample of the contexts whose max falls in it, and how many do.
        self.quantile_k, self.quantile_bins, self.seed = int(quantile_k), int(quantile_bins), int(seed)
        self.q_next = 0
        self.top_q = [_TopK(self.quantile_k, n, self.ctx_len) for _ in range(self.quantile_bins if quantile_k else 0)]
        self.q_count = torch.zeros((n, self.quantile_bins if quantile_k else 0), dtype=torch.long)
        self.token_ids = torch.as_tensor(list(token_ids), dtype=torch.long)
        n_tok = self.token_ids.numel()
        self.tok_sum = torch.zeros((n_tok + 1, n), dtype=torch.float32)  # last row: untracked tokens
        self.tok_max = torch.full((n_tok + 1, n), -math.inf, dtype=torch.float32)
        self.tok_count = torch.zeros(n_tok + 1, dtype=torch.long)
        self._tok_row: torch.Tensor | None = None

    @property
    def cols(self) -> torch.Tensor:
        """Global neuron ids (``layer * d_mlp + index``) of this harvest's columns."""
        return torch.cat([torch.arange(l * self.d_mlp, (l + 1) * self.d_mlp) for l in self.layers])

    def _chunks(self) -> list[tuple[int, int]]:
        """Column chunks that never straddle a layer, so that a shard of layers does exactly the
        arithmetic the whole model's harvest does for those layers."""
        D = self.d_mlp
        return [(s, min(s + _COL_CHUNK, (j + 1) * D)) for j in range(self.n_layers)
                for s in range(j * D, (j + 1) * D, _COL_CHUNK)]

    # --- accumulation ---------------------------------------------------------------------
    def _rows(self, ids: torch.Tensor) -> torch.Tensor:
        n_tok = self.token_ids.numel()
        hi = int(max(int(ids.max()) if ids.numel() else 0, int(self.token_ids.max()) if n_tok else 0)) + 1
        if self._tok_row is None or self._tok_row.numel() < hi:
            row = torch.full((max(hi, 1),), n_tok, dtype=torch.long)
            row[self.token_ids] = torch.arange(n_tok)
            self._tok_row = row
        return self._tok_row[ids]

    def update(self, first: int, tokens: torch.Tensor, acts: torch.Tensor) -> None:
        """Fold one batch: tokens [B, T] and acts [B, T, L, D] (float32) for contexts from ``first``."""
        if first != self.next_index:
            raise ValueError(f"batches must come in order: expected context {self.next_index}, got {first}")
        B, T = tokens.shape
        n, sk = self.n_layers * self.d_mlp, self.skip
        R = B * (T - sk)
        full = acts.reshape(B, T, n)
        if self._table is None:
            self._table = _bin_table(self.edges.numpy())
        nb = self.edges.numel() - 1
        init = self.n_tokens == 0
        rows = self._rows(tokens[:, sk:].reshape(-1))
        mx, mn = torch.empty((B, n)), torch.empty((B, n))
        pmx, pmn = torch.empty((B, n), dtype=torch.long), torch.empty((B, n), dtype=torch.long)
        # Work in column chunks: each chunk's float64 and integer temporaries stay in cache.
        for lo, hi in self._chunks():
            w = hi - lo
            xc = full[:, sk:, lo:hi].reshape(R, w)  # a contiguous copy of this chunk
            xd = xc.double()
            if init:
                self.shift[lo:hi] = xd.mean(dim=0)
            y = xd.sub_(self.shift[lo:hi])
            y2 = y * y
            self.sums[0, lo:hi] += y.sum(dim=0)
            self.sums[1, lo:hi] += y2.sum(dim=0)
            self.sums[3, lo:hi] += (y2 * y2).sum(dim=0)
            self.sums[2, lo:hi] += y2.mul_(y).sum(dim=0)
            code = (xc.view(torch.int32) >> 20) & 0xFFF
            flat = self._table[code].add_(torch.arange(w) * nb)
            self.hist[lo:hi].view(-1).add_(torch.bincount(flat.view(-1), minlength=w * nb))
            self.n_active[lo:hi] += (xc > 0).sum(dim=0)
            v = xc.view(B, T - sk, w)
            mx[:, lo:hi], pmx[:, lo:hi] = v.max(dim=1)
            mn[:, lo:hi], pmn[:, lo:hi] = v.min(dim=1)
            self.tok_sum[:, lo:hi].index_add_(0, rows, xc)
            with warnings.catch_warnings():  # index_reduce_ is "beta" but stable since torch 1.13
                warnings.simplefilter("ignore", UserWarning)
                self.tok_max[:, lo:hi].index_reduce_(0, rows, xc, "amax", include_self=True)
        self.vmax = torch.maximum(self.vmax, mx.amax(dim=0))
        self.vmin = torch.minimum(self.vmin, mn.amin(dim=0))
        self.n_tokens += R
        # top-k contexts: one entry per context, its max (min) over the counted positions
        self.top_max.update(first, mx, pmx + sk, full)
        self.top_min.update(first, mn.neg_(), pmn + sk, full)
        if self.random_k:
            self.top_rand.update(first, _random_key(first + torch.arange(B), self.cols), pmx + sk, full)
        self.tok_count.index_add_(0, rows, torch.ones_like(rows))
        self.next_index = first + B

    def quantile_bin(self, mx: torch.Tensor) -> torch.Tensor:
        """Interval of (0, max] each context max falls in (-1: none, a max <= 0): interval j is
        [j, j+1) * max / bins, the last one closed at the neuron's max."""
        hi = self.vmax.double()
        b = torch.floor(mx.double() / hi * self.quantile_bins).clamp_(max=self.quantile_bins - 1).long()
        return torch.where((mx > 0) & (hi > 0), b, torch.full_like(b, -1))

    def update_quantiles(self, first: int, tokens: torch.Tensor, acts: torch.Tensor) -> None:
        """Second pass, once every context was folded by :meth:`update` (each neuron's max is
        known): bin each context by its max and keep, per interval, the ``quantile_k`` contexts
        with the largest random key (a uniform sample of the interval, as the random sample)."""
        if self.next_index == 0 or not self.quantile_k:
            raise ValueError("the quantile pass needs a finished first pass and quantile_k > 0")
        if first != self.q_next:
            raise ValueError(f"batches must come in order: expected context {self.q_next}, got {first}")
        B, T = tokens.shape
        n, sk = self.n_layers * self.d_mlp, self.skip
        full = acts.reshape(B, T, n)
        mx, pmx = full[:, sk:, :].max(dim=1)
        b = self.quantile_bin(mx)
        key = _random_key(first + torch.arange(B), self.cols, salt=1 + self.seed)
        for j, top in enumerate(self.top_q):
            inside = b == j
            self.q_count[:, j] += inside.sum(dim=0)
            top.update(first, torch.where(inside, key, -math.inf), pmx + sk, full)
        self.q_next = first + B

    # --- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "version": FORMAT_VERSION, "n_layers": self.n_layers, "d_mlp": self.d_mlp, "ctx_len": self.ctx_len,
            "top_k": self.top_k, "token_top_k": self.token_top_k, "skip": self.skip,
            "n_tokens": self.n_tokens, "next_index": self.next_index, "edges": self.edges,
            "shift": self.shift, "sums": self.sums, "n_active": self.n_active, "vmax": self.vmax,
            "vmin": self.vmin, "hist": self.hist, "token_ids": self.token_ids, "tok_sum": self.tok_sum,
            "tok_max": self.tok_max, "tok_count": self.tok_count,
        }
        st.update(self.top_max.state("top_max"))
        st.update(self.top_min.state("top_min"))
        st["random_k"] = self.random_k
        if self.random_k:
            st.update(self.top_rand.state("top_rand"))
        st.update(layers=torch.tensor(self.layers, dtype=torch.long), quantile_k=self.quantile_k,
                  quantile_bins=self.quantile_bins, seed=self.seed, q_next=self.q_next, q_count=self.q_count)
        for j, top in enumerate(self.top_q):
            st.update(top.state(f"top_q{j}"))
        return st

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> "Harvest":
        if st.get("version") != FORMAT_VERSION:
            raise ValueError(f"checkpoint format {st.get('version')} is not {FORMAT_VERSION}")
        h = cls.__new__(cls)
        for k in ("n_layers", "d_mlp", "ctx_len", "top_k", "token_top_k", "skip", "n_tokens", "next_index",
                  "edges", "shift", "sums", "n_active", "vmax", "vmin", "hist", "token_ids", "tok_sum",
                  "tok_max", "tok_count"):
            setattr(h, k, st[k])
        n = h.n_layers * h.d_mlp
        h.top_max, h.top_min = _TopK(0, n, h.ctx_len), _TopK(0, n, h.ctx_len)
        h.top_max.load("top_max", st)
        h.top_min.load("top_min", st)
        h.random_k = int(st.get("random_k", 0))
        h.top_rand = _TopK(0, n, h.ctx_len)
        if h.random_k:
            h.top_rand.load("top_rand", st)
        h.layers = [int(l) for l in st["layers"].tolist()]
        h.quantile_k, h.quantile_bins, h.seed = int(st["quantile_k"]), int(st["quantile_bins"]), int(st["seed"])
        h.q_next, h.q_count = int(st["q_next"]), st["q_count"]
        h.top_q = [_TopK(0, n, h.ctx_len) for _ in range(h.quantile_bins if h.quantile_k else 0)]
        for j, top in enumerate(h.top_q):
            top.load(f"top_q{j}", st)
        h._tok_row = None
        h._table = None
        return h

    def save(self, path: Path | str, **meta: Any) -> None:
        """Write the state atomically (temp file + rename): a crash never leaves a torn file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save({**self.state_dict(), "meta": meta}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path | str) -> tuple["Harvest", dict[str, Any]]:
        st = torch.load(Path(path), weights_only=True)
        return cls.from_state(st), st.get("meta", {})

    # --- results --------------------------------------------------------------------------
    def result(self) -> "HarvestResult":
        L, D = self.n_layers, self.d_mlp
        shape = (L, D)
        n = max(self.n_tokens, 1)
        s1, s2, s3, s4 = (self.sums[i] / n for i in range(4))
        c2 = (s2 - s1 ** 2).clamp_min(0)
        c3 = s3 - 3 * s1 * s2 + 2 * s1 ** 3
        c4 = s4 - 4 * s1 * s3 + 6 * s1 ** 2 * s2 - 3 * s1 ** 4
        live = c2 > 0
        safe = torch.where(live, c2, torch.ones_like(c2))
        skew = torch.where(live, c3 / safe ** 1.5, torch.zeros_like(c2))
        kurt = torch.where(live, c4 / safe ** 2, torch.zeros_like(c2))
        mean = self.shift + s1
        hist = self.hist.numpy().reshape(L, D, -1)
        vmax, vmin = self.vmax.numpy().reshape(shape), self.vmin.numpy().reshape(shape)
        quant = histogram_quantiles(hist, self.edges.numpy(), QUANTILE_LEVELS, vmin, vmax)
        mx = self.top_max.sorted()
        mn = self.top_min.sorted()
        rnd = self.top_rand.sorted() if self.random_k else None
        # per-token statistics: tracked tokens only, top ``token_top_k`` per neuron by mean
        n_tok = self.token_ids.numel()
        kt = min(self.token_top_k, n_tok)
        if kt:
            cnt = self.tok_count[:n_tok].clamp_min(1).to(torch.float32)
            means = self.tok_sum[:n_tok] / cnt[:, None]
            tv, ti = torch.topk(means, kt, dim=0)
            tok_ids = self.token_ids[ti].T.numpy().reshape(L, D, kt)
            tok_mean = tv.T.numpy().reshape(L, D, kt)
            tok_max = torch.gather(self.tok_max[:n_tok], 0, ti).T.numpy().reshape(L, D, kt)
            tok_cnt = self.tok_count[:n_tok][ti].T.numpy().reshape(L, D, kt)
        else:
            tok_ids = np.zeros((L, D, 0), np.int64)
            tok_mean = tok_max = np.zeros((L, D, 0), np.float32)
            tok_cnt = np.zeros((L, D, 0), np.int64)
        k = self.top_k
        res = HarvestResult(
            n_layers=L, d_mlp=D, n_tokens=self.n_tokens, n_contexts=self.next_index,
            mean=mean.numpy().reshape(shape), var=c2.numpy().reshape(shape), skew=skew.numpy().reshape(shape),
            kurt=kurt.numpy().reshape(shape),
            frac_active=(self.n_active.double() / n).numpy().reshape(shape), max=vmax, min=vmin,
            hist_edges=self.edges.numpy(), hist_counts=hist, quantile_levels=np.array(QUANTILE_LEVELS),
            quantiles=quant,
            top_max_val=mx[0].reshape(L, D, k), top_max_ctx=mx[1].reshape(L, D, k),
            top_max_pivot=mx[2].reshape(L, D, k), top_max_acts=mx[3].reshape(L, D, k, -1),
            top_min_val=-mn[0].reshape(L, D, k), top_min_ctx=mn[1].reshape(L, D, k),
            top_min_pivot=mn[2].reshape(L, D, k), top_min_acts=mn[3].reshape(L, D, k, -1),
            token_ids=tok_ids, token_mean=tok_mean, token_max=tok_max, token_count=tok_cnt,
        )
        if rnd is not None:
            kr = self.random_k
            res.random_ctx = rnd[1].reshape(L, D, kr)
            res.random_pivot = rnd[2].reshape(L, D, kr)
            res.random_acts = rnd[3].reshape(L, D, kr, -1)
        if self.top_q and self.q_next:
            self._quantile_result(res)
        res.layers = list(self.layers)
        res.compute_interest()
        return res

    def _quantile_result(self, res: "HarvestResult") -> None:
        """Per interval, the sampled contexts ordered by their max (highest first), -1 padded."""
        L, D, nb, k, T = self.n_layers, self.d_mlp, self.quantile_bins, self.quantile_k, self.ctx_len
        ctx = np.full((L * D, nb, k), -1, dtype=np.int64)
        piv = np.zeros((L * D, nb, k), dtype=np.int64)
        acts = np.zeros((L * D, nb, k, T), dtype=np.float32)
        for j, top in enumerate(self.top_q):
            c, p, a = top.ctx.numpy().T, top.pivot.numpy().T, top.acts.numpy().transpose(1, 0, 2)
            peak = np.where(c >= 0, a[:, :, self.skip:].max(axis=2), -np.inf)
            # by max, highest first; ties by the earlier context; empty slots last
            order = np.lexsort((np.where(c < 0, np.iinfo(np.int64).max, c), -peak.astype(np.float64)), axis=1)
            ctx[:, j] = np.take_along_axis(c, order, axis=1)
            piv[:, j] = np.take_along_axis(p, order, axis=1)
            acts[:, j] = np.take_along_axis(a, order[:, :, None], axis=1)
        res.quantile_ctx = ctx.reshape(L, D, nb, k)
        res.quantile_pivot = piv.reshape(L, D, nb, k)
        res.quantile_acts = acts.reshape(L, D, nb, k, T)
        res.quantile_count = self.q_count.numpy().reshape(L, D, nb)
        frac = np.arange(nb + 1, dtype=np.float64) / nb
        edges = self.vmax.numpy().astype(np.float64)[:, None] * frac
        res.quantile_edges = edges.astype(np.float32).reshape(L, D, nb + 1)


def histogram_quantiles(hist: np.ndarray, edges: np.ndarray, levels: tuple[float, ...] | np.ndarray,
                        vmin: np.ndarray, vmax: np.ndarray) -> np.ndarray:
    """Approximate quantiles [..., len(levels)] by linear interpolation inside histogram bins;
    the outer edges are widened to the exact min/max, and results clipped to [min, max]."""
    counts = hist.astype(np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(counts, axis=-1)
    out = np.zeros(hist.shape[:-1] + (len(levels),), dtype=np.float64)
    lo_edges = np.broadcast_to(edges[:-1].astype(np.float64), hist.shape).copy()
    hi_edges = np.broadcast_to(edges[1:].astype(np.float64), hist.shape).copy()
    lo_edges[..., 0] = np.minimum(lo_edges[..., 0], vmin)
    hi_edges[..., -1] = np.maximum(hi_edges[..., -1], vmax)
    for j, q in enumerate(levels):
        target = q * total
        idx = np.argmax(cdf >= target, axis=-1)[..., None]
        c_hi = np.take_along_axis(cdf, idx, axis=-1)
        c_bin = np.take_along_axis(counts, idx, axis=-1)
        frac = np.where(c_bin > 0, (target - (c_hi - c_bin)) / np.maximum(c_bin, 1), 0.0)
        lo = np.take_along_axis(lo_edges, idx, axis=-1)
        hi = np.take_along_axis(hi_edges, idx, axis=-1)
        out[..., j] = (lo + frac * (hi - lo))[..., 0]
    return np.clip(out, vmin[..., None], vmax[..., None]).astype(np.float32)


@dataclass
class HarvestResult:
    """Per-neuron results as numpy arrays indexed [layer, neuron, ...].

        >>> r = harvest(model, contexts)
        >>> r.mean[3, 17], r.top_max_ctx[3, 17, 0], r.token_ids[3, 17, :5]
        >>> r.interest_rank[3, 17]        # 0 = the model's most interesting neuron
    """

    n_layers: int
    d_mlp: int
    n_tokens: int
    n_contexts: int
    mean: np.ndarray
    var: np.ndarray
    skew: np.ndarray
    kurt: np.ndarray
    frac_active: np.ndarray
    max: np.ndarray
    min: np.ndarray
    hist_edges: np.ndarray
    hist_counts: np.ndarray
    quantile_levels: np.ndarray
    quantiles: np.ndarray
    top_max_val: np.ndarray
    top_max_ctx: np.ndarray
    top_max_pivot: np.ndarray
    top_max_acts: np.ndarray
    top_min_val: np.ndarray
    top_min_ctx: np.ndarray
    top_min_pivot: np.ndarray
    top_min_acts: np.ndarray
    token_ids: np.ndarray
    token_mean: np.ndarray
    token_max: np.ndarray
    token_count: np.ndarray
    interest: np.ndarray | None = None
    interest_rank: np.ndarray | None = None
    interest_layer_rank: np.ndarray | None = None
    checkpoint: str | None = None  # the state file this came from, when checkpointed
    pass_seconds: dict[str, float] | None = None  # forward-pass time of each pass of this run
    random_ctx: np.ndarray | None = None    # [L, D, random_k] a uniform random sample of contexts
    random_pivot: np.ndarray | None = None  # (OpenAI's random_sample), -1 where fewer contexts
    random_acts: np.ndarray | None = None
    layers: list[int] | None = None          # the model layers rows [0..n_layers) stand for (a shard)
    quantile_ctx: np.ndarray | None = None   # [L, D, bins, quantile_k] contexts sampled per interval
    quantile_pivot: np.ndarray | None = None
    quantile_acts: np.ndarray | None = None  # [L, D, bins, quantile_k, T]
    quantile_count: np.ndarray | None = None  # [L, D, bins] contexts whose max falls in each interval
    quantile_edges: np.ndarray | None = None  # [L, D, bins + 1] interval bounds: (0, max] in equal parts

    def compute_interest(self) -> None:
        """Interest = the mean percentile (within the model) of kurtosis, max activation and
        sparsity (1 - fraction active); ranks 0 = most interesting, per model and per layer.
        A shard's result ranks only its own layers (``build`` recomputes them from the store)."""
        # float32 as stored: the ranks are then the same whether computed here or from the store
        self.interest, self.interest_rank, self.interest_layer_rank = interest_scores(
            self.kurt, self.max, self.frac_active.astype(np.float32))


def interest_scores(kurt: np.ndarray, vmax: np.ndarray, frac_active: np.ndarray, have: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(interest, model rank, layer rank) of [L, D] statistics: the mean of the three
    percentiles; only neurons where ``have`` is set are ranked (the rest score 0, rank last)."""
    have = np.ones(kurt.shape, dtype=bool) if have is None else have
    m = int(have.sum())

    def pct(a: np.ndarray) -> np.ndarray:
        vals = a[have].astype(np.float64)
        r = np.empty(m)
        r[np.argsort(vals, kind="stable")] = np.arange(m) / max(m - 1, 1)
        out = np.zeros(a.shape)
        out[have] = r
        return out

    frac = frac_active.astype(np.float32).astype(np.float64)
    interest = np.where(have, (pct(kurt) + pct(vmax) + pct(1.0 - frac)) / 3, -1.0).astype(np.float32)
    flat = interest.reshape(-1)
    rank = np.empty(flat.size, dtype=np.int64)
    rank[np.argsort(-flat, kind="stable")] = np.arange(flat.size)
    layer_rank = np.empty(interest.shape, dtype=np.int64)
    for layer in range(interest.shape[0]):
        layer_rank[layer, np.argsort(-interest[layer], kind="stable")] = np.arange(interest.shape[1])
    return np.where(have, interest, 0).astype(np.float32), rank.reshape(interest.shape), layer_rank


# --- the pass ----------------------------------------------------------------------------
def tracked_tokens(contexts: torch.Tensor, min_count: int, skip: int = 0, max_tokens: int = 4096) -> np.ndarray:
    """Token ids seen at least ``min_count`` times (outside the skipped positions), the
    ``max_tokens`` most frequent, in id order: the rows of the per-token accumulators."""
    ids = torch.as_tensor(contexts)[:, skip:].reshape(-1)
    counts = torch.bincount(ids)
    keep = (counts >= max(min_count, 1)).nonzero().squeeze(1)
    if keep.numel() > max_tokens:
        # most frequent first; ties by id, so the choice is deterministic
        order = np.lexsort((keep.numpy(), -counts[keep].numpy()))[:max_tokens]
        keep = torch.as_tensor(np.sort(keep.numpy()[order]))
    return keep.numpy()


def _skip_for(model: "LoadedModel", contexts: torch.Tensor) -> int:
    bos = model.bos_token_id
    return int(bos is not None and contexts.shape[1] > 1 and bool((contexts[:, 0] == bos).all()))


def harvest_fingerprint(model: "LoadedModel", contexts: torch.Tensor, **knobs: Any) -> str:
    h = hashlib.sha1()
    h.update(model.name.encode())
    h.update(repr(sorted(knobs.items())).encode())
    h.update(np.ascontiguousarray(torch.as_tensor(contexts).numpy()).tobytes())
    # the weights too, cheaply: a model booted from different weights is a different input
    h.update(model.bridge.W_in[0].detach().to(torch.float32).numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


def harvest(model: "LoadedModel", contexts: torch.Tensor, *, top_k: int = 20, batch_size: int = 8,
            min_token_count: int = 5, token_top_k: int | None = None, max_tracked_tokens: int = 4096,
            checkpoint_dir: Path | None = None,
            checkpoint_every: int | None = None, checkpoint_seconds: float = 120.0,
            progress: bool = True, max_batches: int | None = None, random_k: int = 0,
            layers: list[int] | None = None, quantile_k: int = 0, quantile_bins: int = 10,
            seed: int = 0) -> HarvestResult | None:
    """Run the pass over ``contexts`` [N, T] and return the :class:`HarvestResult`.

    With ``checkpoint_dir`` the state is saved every ``checkpoint_every`` batches (or every
    ``checkpoint_seconds``) and at the end; a re-run with the same inputs resumes from it (a
    finished one returns at once). ``max_batches`` stops early (returns None), leaving a
    checkpoint: a deliberate interruption. ``random_k``: also keep that many contexts per neuron
    drawn uniformly at random (OpenAI's random sample, beside the top ones). ``layers``: only
    these layers (a shard; the forward pass stops after the last). ``quantile_k``: a second
    pass, once every neuron's max is known, keeps that many contexts per interval of (0, max]
    cut into ``quantile_bins`` equal parts, uniformly drawn among the contexts whose max falls
    in it (Neuronpedia's quantile-sampled examples); ``seed`` picks another draw.
    """
    contexts = torch.as_tensor(contexts, dtype=torch.long)
    N, T = contexts.shape
    skip = _skip_for(model, contexts)
    token_ids = tracked_tokens(contexts, min_token_count, skip, max_tracked_tokens)
    knobs = dict(top_k=top_k, batch_size=batch_size, min_token_count=min_token_count, token_top_k=token_top_k,
                 max_tracked_tokens=max_tracked_tokens, skip=skip, version=FORMAT_VERSION)
    if random_k:
        knobs["random_k"] = random_k
    all_layers = list(range(model.info.n_layers))
    layers = all_layers if layers is None else sorted({int(l) for l in layers})
    if not layers or not set(layers) <= set(all_layers):
        raise ValueError(f"{model.name} has layers 0..{model.info.n_layers - 1}, not {layers}")
    if layers != all_layers:
        knobs["layers"] = layers
    if quantile_k:
        if quantile_bins < 1:
            raise ValueError(f"quantile_bins must be >= 1, not {quantile_bins}")
        knobs.update(quantile_k=quantile_k, quantile_bins=quantile_bins, seed=seed)
    path = None
    h: Harvest | None = None
    if checkpoint_dir is not None:
        path = Path(checkpoint_dir) / f"harvest-{model.name}-{harvest_fingerprint(model, contexts, **knobs)}.pt"
        if path.is_file():
            try:
                h, _meta = Harvest.load(path)
            except Exception:  # a torn or foreign file: start over rather than fail
                h = None
    if h is None:
        h = Harvest(len(layers), model.info.d_mlp, T, top_k=top_k, token_ids=token_ids,
                    token_top_k=token_top_k, skip=skip, random_k=random_k, layers=layers,
                    quantile_k=quantile_k, quantile_bins=quantile_bins, seed=seed)
    last_save, done_batches = time.monotonic(), 0
    passes = [("activations", lambda: h.next_index, h.update)]
    if quantile_k:
        passes.append(("quantile examples", lambda: h.q_next, h.update_quantiles))
    pass_s: dict[str, float] = {}
    for label, done, fold in passes:
        # Each pass resumes where the checkpoint left it; a finished one yields no batch.
        bar = Counter(f"{label} {model.name}", total=N, done=done(), enabled=progress)
        t0, tokens0 = time.monotonic(), 0
        try:
            for first, toks, buf in _batches(model, contexts, batch_size, done(), layers):
                fold(first, toks, buf)
                done_batches += 1
                tokens0 += toks.numel()
                bar(toks.shape[0])
                bar.note(f"{tokens0 / max(time.monotonic() - t0, 1e-9):.0f} tok/s")
                stop = max_batches is not None and done_batches >= max_batches and not (
                    done() >= N and label == passes[-1][0])
                if path is not None and (stop or (checkpoint_every and done_batches % checkpoint_every == 0)
                                         or time.monotonic() - last_save >= checkpoint_seconds):
                    h.save(path)
                    last_save = time.monotonic()
                if stop:
                    return None
        finally:
            bar.close()
        pass_s[label] = round(time.monotonic() - t0, 2)
    if path is not None and done_batches:
        h.save(path)
    res = h.result()
    res.checkpoint = str(path) if path is not None else None
    res.pass_seconds = pass_s
    return res


def clear_checkpoint(result: HarvestResult) -> None:
    """Remove the state file a finished harvest left (once its results are safely written)."""
    if result.checkpoint:
        Path(result.checkpoint).unlink(missing_ok=True)
