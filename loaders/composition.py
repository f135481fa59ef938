"""Weight-based connectivity: neuron↔neuron, neuron↔head and neuron↔token scores, top-k.

Everything is computed in tiles (rows of one layer × a piece of the partners), so memory is
bounded by a few tiles, never ``n_neurons²`` floats (SmolLM2-135M has 46,080 neurons: a dense
matrix would be 8 GB). The tiles go to the streaming top-k engine (topk.py), which keeps
each owner's best and worst partners and its distribution summary.

Neuron↔neuron lists (owner = the neuron whose list it is, partner = any other neuron of any
layer; ``in`` = the ln2-folded input direction, ``out`` = the row of W_out):

=====================  ================================================  ====================
list                   score[owner, partner]                             partners
=====================  ================================================  ====================
in_in, in_out,         cosine of owner's {in,out} with partner's         all layers, self
out_in, out_out        {in,out}, as Universal Neurons ``weights.py``     excluded (zeroed)
virtual_down           out[owner] · in[partner]   (OpenAI related         later layers
                       neurons: W_out · diag(ln2) · W_in)
virtual_up             out[partner] · in[owner]                          earlier layers
gate_virtual_down/up   the same through the gate (W_gate) of a SwiGLU    later / earlier
=====================  ================================================  ====================

``out_in`` and ``in_out`` are the rows and columns of one product, and so are the ``virtual``
pair, so four matmuls serve all eight lists; ``in_in`` and ``out_out`` are symmetric, so only
their tiles on and above the diagonal are computed. Each list keeps top-k and bottom-k per
owner and the owner's distribution summary (mean, std, histogram: 100 bins on [-1, 1] for
cosines, on a symmetric range measured from a sample for virtual weights; values outside
fall into the end bins). Mean and std include the zeroed self entry, as Universal Neurons
does.

    w = ModelWeights.random(n_layers=3, d_model=16, d_mlp=24, n_heads=4, d_vocab=50)
    lists = neuron_composition(w, k=5)
    lists["out_in"].top.indices[7]        # global ids (layer * d_mlp + index) of partners
    heads = head_composition(w, k=5)      # K/Q/V/O scores, top-k per neuron and per head
    tokens = token_effects(w, k=20)       # input / output token weights, top and bottom
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from neurograph.progress import track

from .topk import TILE_COLS, TILE_ROWS, RankedList, StreamingLists, Tiles, TopK, keep_pools_small, pieces
from .weights import ModelWeights

Tensor = torch.Tensor

COSINE_LISTS = ("in_in", "in_out", "out_in", "out_out")
VIRTUAL_LISTS = ("virtual_down", "virtual_up")
GATE_LISTS = ("gate_virtual_down", "gate_virtual_up")
ALL_LISTS = COSINE_LISTS + VIRTUAL_LISTS + GATE_LISTS
HEAD_KINDS = ("K", "Q", "V", "O")


def edge_kind(list_name: str) -> str:
    """The COMPOSES edge kind a list's edges carry ("virtual_up" -> "virtual")."""
    return list_name.removesuffix("_down").removesuffix("_up")


class CompositionList(RankedList):
    """One neuron↔neuron list: top-k, bottom-k and the distribution of each owner.

        lst = neuron_composition(w, k=5)["out_in"]
        lst.kind, lst.top.rows(0), lst.bottom.rows(0), lst.summary.mean[0]
    """

    @property
    def kind(self) -> str:
        return edge_kind(self.name)


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def block_rows_for(n_cols: int, memory_mb: float, temporaries: int = 4) -> int:
    """Rows per block so that ``temporaries`` float32 [rows, n_cols] blocks fit memory_mb."""
    return max(1, int(memory_mb * 2**20 / (4 * temporaries * max(1, n_cols))))


def virtual_range(out: Tensor, ins: Tensor, d_mlp: int, sample: int = 256, seed: int = 0) -> float:
    """Symmetric histogram range for virtual weights: 1.25 × the largest |weight| seen
    between a random sample of writers and all readers of later layers."""
    n = out.shape[0]
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n, generator=g)[: min(sample, n)].to(out.device)
    layer = rows // d_mlp
    v = out[rows] @ ins.T
    later = torch.arange(n, device=out.device)[None, :] // d_mlp > layer[:, None]
    m = float(v.abs().masked_fill(~later, 0).max()) if later.any() else 0.0
    return 1.25 * m if m > 0 else 1.0


def neuron_composition(w: ModelWeights, k: int = 10, *, lists: Iterable[str] = ALL_LISTS,
                       bins: int = 100, memory_mb: float = 512, device: str | torch.device = "cpu",
                       progress: bool = True, layers: Iterable[int] | None = None) -> dict[str, CompositionList]:
    """Top-k / bottom-k partners and distribution summaries for every neuron and list.

    Returns {list name: CompositionList}; neuron ids are global (layer * d_mlp + index).
    Gate lists are skipped for non-gated models. Memory: three scratch tiles within
    ``memory_mb`` (about 12 MB by default: tiles are sized for the cache, the budget only
    caps them), candidate pools up to ``POOL`` entries, and O(n_neurons × (k + bins)) for
    the results.

    ``layers`` (a shard): only the lists of those layers' neurons are complete (the others are
    left partial: callers keep only the owners of ``layers``). The same tiles as a whole run
    are computed, in the same order, skipping those that touch none of the shard's neurons, so
    each list it owns gets exactly the numbers one run gives it.
    """
    lists = list(lists)
    unknown = set(lists) - set(ALL_LISTS)
    if unknown:
        raise ValueError(f"unknown composition lists {sorted(unknown)}; choose from {ALL_LISTS}")
    wanted = [n for n in lists if w.gated or n not in GATE_LISTS]
    device = torch.device(device)
    w = w.to(device)
    L, D = w.n_layers, w.d_mlp
    N = L * D
    ins = w.in_eff().reshape(N, -1)
    out = w.out_rows().reshape(N, -1)
    gate = w.gate_eff().reshape(N, -1) if w.gated else None
    in_hat, out_hat = _unit(ins), _unit(out)
    in_norm, out_norm = ins.norm(dim=-1), out.norm(dim=-1)

    r_v = virtual_range(out, ins, D) if set(VIRTUAL_LISTS) & set(wanted) else 1.0
    r_g = virtual_range(out, gate, D) if gate is not None and set(GATE_LISTS) & set(wanted) else 1.0
    ranges = {n: (-1.0, 1.0) for n in COSINE_LISTS} | {n: (-r_v, r_v) for n in VIRTUAL_LISTS} \
        | {n: (-r_g, r_g) for n in GATE_LISTS}
    st = {n: StreamingLists(n, N, k, *ranges[n], bins, device) for n in wanted}
    get = st.get

    # rows of one layer at a time, against pieces of the partners; 3 scratch tiles in the budget
    E = int(memory_mb * 2**20 / 12)
    R = max(1, min(D, TILE_ROWS, math.isqrt(E)))
    W = max(R, min(TILE_COLS, E // R))
    ws = Tiles(R, W, device)
    row_chunks = [(l, l * D + s, l * D + e) for l in range(L) for s, e in pieces(0, D, R)]
    mine = None if layers is None else torch.zeros(L, dtype=torch.bool)
    if mine is not None:
        mine[list(layers)] = True

    def cols(c0: int, c1: int) -> list[tuple[int, int]]:
        """Column pieces of c0..c1-1 that never straddle a layer, so that a shard can take
        exactly the whole run's tiles of its own layers."""
        return [p for m in range(c0 // D, -(-c1 // D)) for p in pieces(max(c0, m * D), min(c1, (m + 1) * D), W)]

    def wanted_cols(l: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The column pieces of a row chunk of layer l this shard needs: all of them for its
        own rows, else those of its own layers (they feed its column lists)."""
        if mine is None or mine[l]:
            return spans
        return [(c0, c1) for c0, c1 in spans if bool(mine[c0 // D])]

    for l, r0, r1 in track(row_chunks, "neuron composition", enabled=progress):
        rows, nxt = slice(r0, r1), (l + 1) * D  # partners of later layers: ids nxt..N-1
        # in_in and out_out are symmetric: the rows' own square serves the rows' lists, the
        # columns beyond it serve the rows' lists and the columns' lists
        for name, hat in (("in_in", in_hat), ("out_out", out_hat)):
            if name in st:
                if wanted_cols(l, [(r0, r1)]):
                    x = ws.product(hat[rows], hat[rows])
                    x.diagonal().zero_()
                    ws.feed(x, r0, r0, st[name], None)
                for c0, c1 in wanted_cols(l, cols(r1, N)):
                    ws.feed(ws.product(hat[rows], hat[c0:c1]), r0, c0, st[name], st[name])
        cos_lists = (get("out_in"), get("in_out"))
        virtual = (get("virtual_down"), get("virtual_up"))
        for c0, c1 in wanted_cols(l, cols(0, N)) if any(cos_lists + virtual) else []:
            later = c0 >= nxt
            if not (any(cos_lists) or (later and any(virtual))):
                continue
            x = ws.product(out_hat[rows], in_hat[c0:c1])  # [owner writes, partner reads]
            if c0 < r1 and r0 < c1:  # self is not an edge
                own = torch.arange(max(r0, c0), min(r1, c1), device=device)
                x[own - r0, own - c0] = 0
            if any(cos_lists):  # in_out[m, n] = cos(in_m, out_n): the columns
                ws.feed(x, r0, c0, *cos_lists)
            if later and any(virtual):
                x.mul_(out_norm[rows, None]).mul_(in_norm[None, c0:c1])
                ws.feed(x, r0, c0, *virtual)
        gated = (get("gate_virtual_down"), get("gate_virtual_up"))
        if gate is not None and any(gated):
            for c0, c1 in wanted_cols(l, cols(nxt, N)):
                ws.feed(ws.product(out[rows], gate[c0:c1]), r0, c0, *gated)
        keep_pools_small(st.values())
    return {n: s.result(CompositionList) for n, s in st.items()}


# --- neuron ↔ attention head ---------------------------------------------------------------
@dataclass
class HeadComposition:
    """K/Q/V/O composition scores between neurons and heads.

    ``scores[kind]`` is [n_neurons, n_layers, n_heads] with NaN where the order is invalid
    (K/Q/V: the neuron's layer must be earlier than the head's; O: the head's layer must not
    be later than the neuron's, since attention runs before the MLP within a block).
    ``by_neuron[kind]`` / ``by_head[kind]`` are TopK over heads (global id layer * H + head) /
    over neurons.

        hc = head_composition(w, k=5)
        hc.by_head["K"].rows(3 * w.n_heads + 1)    # top neurons read by the keys of L3H1
    """

    scores: dict[str, Tensor]
    by_neuron: dict[str, TopK]
    by_head: dict[str, TopK]


def _quad(u: Tensor, G: Tensor) -> Tensor:
    """sqrt(u^T G u) per row of u [n, H, dh] with G [H, dh, dh]."""
    return torch.einsum("nhd,hde,nhe->nh", u, G, u).clamp(min=0).sqrt()


def head_composition(w: ModelWeights, k: int = 10, *, device: str | torch.device = "cpu",
                     progress: bool = True) -> HeadComposition:
    """Composition scores after Universal Neurons' ``compute_attention_composition``:
    unit-norm neuron vectors, each head's full W_QK / W_OV divided by its Frobenius norm,
    score = norm of the vector the head produces from the neuron's direction.

    - K: neuron output read by the head's keys, ``‖W_QK · out‖``   (W_QK = W_Q W_Kᵀ, query×key)
    - Q: neuron output read by the head's queries, ``‖W_QKᵀ · out‖``
    - V: neuron output moved by the head, ``‖outᵀ · W_OV‖``        (W_OV = W_V W_O, in×out)
    - O: head output read by the neuron, ``‖W_OV · in‖``
    Universal Neurons applies ``.T`` to TransformerLens' QK (already query×key), which swaps
    its K and Q labels; we keep the Elhage et al. meaning. The d_model×d_model matrices are
    never built: ``‖A Bᵀ u‖² = (Bᵀu)ᵀ (AᵀA) (Bᵀu)``.
    """
    w = w.to(device)
    L, D, H = w.n_layers, w.d_mlp, w.n_heads
    N = L * D
    Wq, Wk, Wv = w.qkv_eff()
    Wo = w.W_O
    out_hat = _unit(w.out_rows().reshape(N, -1))
    in_hat = _unit(w.in_eff().reshape(N, -1))
    scores = {kind: torch.full((N, L, H), float("nan"), device=device) for kind in HEAD_KINDS}
    neuron_layer = torch.arange(N, device=device) // D
    for l in track(range(L), "head composition", enabled=progress):
        Q, K, V, O = Wq[l], Wk[l], Wv[l], Wo[l]  # [H, d, dh] ×3, [H, dh, d]
        QtQ, KtK, VtV = Q.transpose(1, 2) @ Q, K.transpose(1, 2) @ K, V.transpose(1, 2) @ V
        OOt = O @ O.transpose(1, 2)
        qk_norm = torch.einsum("hab,hba->h", QtQ, KtK).clamp(min=1e-30).sqrt()
        ov_norm = torch.einsum("hab,hba->h", VtV, OOt).clamp(min=1e-30).sqrt()
        early = neuron_layer < l          # K/Q/V read earlier neurons
        upto = neuron_layer >= l          # O: neurons of this layer and later read the head
        if early.any():
            x = out_hat[early]
            scores["K"][early, l] = _quad(torch.einsum("nd,hde->nhe", x, K), QtQ) / qk_norm
            scores["Q"][early, l] = _quad(torch.einsum("nd,hde->nhe", x, Q), KtK) / qk_norm
            scores["V"][early, l] = _quad(torch.einsum("nd,hde->nhe", x, V), OOt) / ov_norm
        x = in_hat[upto]
        scores["O"][upto, l] = _quad(torch.einsum("nd,hed->nhe", x, O), VtV) / ov_norm
    by_neuron, by_head = {}, {}
    for kind, s in scores.items():
        flat = s.reshape(N, L * H)
        by_neuron[kind] = _topk_valid(flat, k)
        by_head[kind] = _topk_valid(flat.T.contiguous(), k)
    return HeadComposition({k_: v.cpu() for k_, v in scores.items()}, by_neuron, by_head)


def _topk_valid(x: Tensor, k: int) -> TopK:
    """Top-k along rows, NaN = not a candidate (index -1)."""
    filled = torch.nan_to_num(x, nan=-math.inf)
    kk = min(k, x.shape[1])
    v, i = torch.topk(filled, kk, dim=1)
    i = i.masked_fill(~torch.isfinite(v), -1)
    return TopK(v.cpu(), i.cpu())


# --- neuron ↔ token ----------------------------------------------------------------------
@dataclass
class TokenEffects:
    """Per neuron: top/bottom tokens of its input weight ``W_E · diag(ln2) · W_in`` and of
    its direct logit effect ``W_out · diag(lnf) · W_U``. Token ids in ``indices``.

        te = token_effects(w, k=20)
        te.output_top.rows(7)       # [(token id, logit weight), ...], largest first
    """

    input_top: TopK
    input_bottom: TopK
    output_top: TopK
    output_bottom: TopK


def token_effects(w: ModelWeights, k: int = 20, *, memory_mb: float = 512,
                  device: str | torch.device = "cpu", progress: bool = True,
                  layers: Iterable[int] | None = None) -> TokenEffects:
    """Top-k and bottom-k vocabulary tokens per neuron for input weight and output effect.
    ``layers`` (a shard): only the row blocks holding those layers' neurons are computed (the
    same blocks as a whole run, so the same numbers); other neurons' lists stay empty."""
    w = w.to(device)
    L, D, V = w.n_layers, w.d_mlp, w.d_vocab
    N = L * D
    ins = w.in_eff().reshape(N, -1)
    out = w.out_rows().reshape(N, -1)
    WE, WU = w.W_E, w.unembed_eff()
    kk = min(k, V)
    res = {name: TopK.empty(N, kk, largest=name.endswith("top"))
           for name in ("input_top", "input_bottom", "output_top", "output_bottom")}
    B = block_rows_for(V, memory_mb, temporaries=2)
    starts = range(0, N, B)
    if layers is not None:
        mine = torch.zeros(L, dtype=torch.bool)
        mine[list(layers)] = True
        starts = [s for s in starts if bool(mine[s // D:(min(s + B, N) - 1) // D + 1].any())]
    for s in track(starts, "token effects", enabled=progress):
        rows = slice(s, min(s + B, N))
        for kind, a, b in (("input", ins, WE.T), ("output", out, WU)):
            x = a[rows] @ b  # one [B, V] product at a time
            for largest, suffix in ((True, "top"), (False, "bottom")):
                v, i = torch.topk(x, kk, dim=1, largest=largest)
                res[f"{kind}_{suffix}"].values[rows] = v.cpu()
                res[f"{kind}_{suffix}"].indices[rows] = i.cpu()
            del x
    return TokenEffects(**res)
