"""Weight-based connectivity: neuron↔neuron, neuron↔head and neuron↔token scores, top-k.

Everything is computed in row blocks, so memory is bounded by ``block_rows × n_neurons``
floats, never ``n_neurons²`` (SmolLM2-135M has 46,080 neurons: a dense matrix would be 8 GB).

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
pair, so four matmuls serve all eight lists. Each list keeps top-k and bottom-k per owner and
the owner's distribution summary (mean, std, histogram: 100 bins on [-1, 1] for cosines, on
a symmetric range measured from a sample for virtual weights; values outside fall into the
end bins). Mean and std include the zeroed self entry, as Universal Neurons does.

    w = ModelWeights.random(n_layers=3, d_model=16, d_mlp=24, n_heads=4, d_vocab=50)
    lists = neuron_composition(w, k=5)
    lists["out_in"].top.indices[7]        # global ids (layer * d_mlp + index) of partners
    heads = head_composition(w, k=5)      # K/Q/V/O scores, top-k per neuron and per head
    tokens = token_effects(w, k=20)       # input / output token weights, top and bottom
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from tqdm.auto import tqdm

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


# --- top-k with running merge ---------------------------------------------------------
@dataclass
class TopK:
    """Best ``k`` partners per owner: values [N, k] and global indices [N, k] (-1 = none).

        lists["virtual_down"].top.rows(5)     # [(partner id, weight), ...], best first
    """

    values: Tensor
    indices: Tensor

    @classmethod
    def empty(cls, n: int, k: int, largest: bool) -> "TopK":
        fill = -math.inf if largest else math.inf
        return cls(torch.full((n, k), fill), torch.full((n, k), -1, dtype=torch.long))

    def rows(self, owner: int) -> list[tuple[int, float]]:
        """(partner, value) pairs of one owner, best first, padding dropped."""
        return [(int(i), float(v)) for v, i in zip(self.values[owner], self.indices[owner]) if i >= 0]


def _select(values: Tensor, indices: Tensor, k: int, largest: bool) -> tuple[Tensor, Tensor]:
    k = min(k, values.shape[1])
    v, j = torch.topk(values, k, dim=1, largest=largest, sorted=True)
    return v, torch.gather(indices, 1, j)


def _merge(top: TopK, owners: slice, values: Tensor, indices: Tensor, largest: bool, fresh: bool = False) -> None:
    """Merge candidates (values, indices) [owners, c] into the running lists of a contiguous
    range of owners; ``fresh`` owners have no candidates yet (one block holds all partners)."""
    values, indices = values.to(top.values.device), indices.to(top.indices.device)
    k = top.values.shape[1]
    if fresh:
        top.values[owners, : values.shape[1]], top.indices[owners, : values.shape[1]] = values, indices
        return
    v = torch.cat([top.values[owners], values], dim=1)
    i = torch.cat([top.indices[owners], indices], dim=1)
    top.values[owners], top.indices[owners] = _select(v, i, k, largest)


def _merge_sparse(top: TopK, owners: slice, col: Tensor, values: Tensor, partners: Tensor,
                  largest: bool) -> None:
    """Merge ragged candidates (owner offset ``col``, value, partner id) into the lists of
    the owners they touch: one sort by value, one stable sort by owner, keep k per owner."""
    k = top.values.shape[1]
    touched, inv = torch.unique(col, return_inverse=True)
    rows = touched + owners.start
    T = len(touched)
    v = torch.cat([top.values[rows].reshape(-1), values])
    i = torch.cat([top.indices[rows].reshape(-1), partners])
    g = torch.cat([torch.arange(T).repeat_interleave(k), inv])
    o = torch.argsort(v, descending=largest, stable=True)
    v, i, g = v[o], i[o], g[o]
    o = torch.argsort(g, stable=True)
    v, i, g = v[o], i[o], g[o]
    counts = torch.bincount(g, minlength=T)
    pos = torch.arange(len(g)) - (counts.cumsum(0) - counts)[g]
    keep = pos < k
    nv, ni = top.values[rows].clone(), top.indices[rows].clone()
    nv[g[keep], pos[keep]], ni[g[keep], pos[keep]] = v[keep], i[keep]
    top.values[rows], top.indices[rows] = nv, ni


def _drop_self(values: Tensor, indices: Tensor, owners: Tensor, k: int, largest: bool) -> tuple[Tensor, Tensor]:
    """From k+1 candidates, push the owner itself (if present) to the end and keep k."""
    is_self = indices == owners[:, None]
    bad = -math.inf if largest else math.inf
    values = values.masked_fill(is_self, bad)
    indices = indices.masked_fill(is_self, -1)
    return _select(values, indices, k, largest)


# --- distribution summaries -------------------------------------------------------------
@dataclass
class Summary:
    """Per-owner distribution of a score: mean, std and a histogram on [lo, hi].

        s = lists["in_out"].summary
        z = (weight - s.mean[5]) / s.std[5]    # how unusual an edge of neuron 5 is
        s.hist[5]                              # counts in s.bins equal bins of [s.lo, s.hi]
    """

    lo: float
    hi: float
    bins: int
    n: Tensor = field(default=None)  # type: ignore[assignment]
    s1: Tensor = field(default=None)  # type: ignore[assignment]
    s2: Tensor = field(default=None)  # type: ignore[assignment]
    hist: Tensor = field(default=None)  # type: ignore[assignment]

    @classmethod
    def empty(cls, n: int, lo: float, hi: float, bins: int) -> "Summary":
        return cls(lo, hi, bins, torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
                   torch.zeros(n, dtype=torch.float64), torch.zeros(n, bins, dtype=torch.long))

    def add(self, owners: slice, block: Tensor, moments: bool = True) -> None:
        """Add a block of scores [owners, c] (a contiguous range of owners along the rows)."""
        if moments:
            self.n[owners] += block.shape[1]
            self.s1[owners] += block.sum(dim=1, dtype=torch.float64).cpu()
            self.s2[owners] += torch.linalg.vector_norm(block, dim=1, dtype=torch.float64).square().cpu()
        if self.bins:
            self.hist[owners] += histogram_rows(block, self.lo, self.hi, self.bins).cpu()

    @property
    def mean(self) -> Tensor:
        return self.s1 / self.n.clamp(min=1)

    @property
    def std(self) -> Tensor:
        return (self.s2 / self.n.clamp(min=1) - self.mean.square()).clamp(min=0).sqrt()


def histogram_rows(x: Tensor, lo: float, hi: float, bins: int) -> Tensor:
    """Histogram of each row of x [R, C] on ``bins`` equal bins of [lo, hi] -> [R, bins];
    values outside the range count in the end bins."""
    R = x.shape[0]
    scale = bins / (hi - lo)
    # int32 bins + int32 row offsets halve the traffic of an int64 index tensor
    # (x - lo) * scale in one pass; truncation floors the non-negative part, the clamp on
    # integers puts everything below lo / above hi into the end bins
    t = torch.addcmul(torch.tensor(-lo * scale, device=x.device), x,
                      torch.tensor(scale, device=x.device)).clamp_(-1, bins).to(torch.int32)
    t.clamp_(0, bins - 1).add_((torch.arange(R, device=x.device, dtype=torch.int32) * bins)[:, None])
    return torch.bincount(t.reshape(-1), minlength=R * bins).view(R, bins)


@dataclass
class CompositionList:
    """One neuron↔neuron list: top-k, bottom-k and the distribution of each owner.

        lst = neuron_composition(w, k=5)["out_in"]
        lst.kind, lst.top.rows(0), lst.bottom.rows(0), lst.summary.mean[0]
    """

    name: str
    top: TopK
    bottom: TopK
    summary: Summary

    @property
    def kind(self) -> str:
        return edge_kind(self.name)


class _ListState:
    def __init__(self, name: str, n: int, k: int, lo: float, hi: float, bins: int) -> None:
        self.name, self.k = name, k
        # k+1 candidates so the owner itself can be dropped at the end
        self.top = TopK.empty(n, k + 1, largest=True)
        self.bottom = TopK.empty(n, k + 1, largest=False)
        self.summary = Summary.empty(n, lo, hi, bins)

    def rows(self, owners: slice, block: Tensor, first_partner: int, fresh: bool) -> None:
        """Owners along the rows of block; its columns are partners first_partner, +1, ...
        Moments are not summed here: :func:`_moments` has them exactly from Gram matrices."""
        if block.shape[1] == 0:
            return
        kk = min(self.k + 1, block.shape[1])
        for top, largest in ((self.top, True), (self.bottom, False)):
            v, j = torch.topk(block, kk, dim=1, largest=largest)
            _merge(top, owners, v.cpu(), j.cpu() + first_partner, largest, fresh)
        self.summary.add(owners, block, moments=False)

    def cols(self, owners: slice, block: Tensor, first_partner: int) -> None:
        """Owners along the columns of block [partners, owners]; partners are first_partner,
        +1, ... Once an owner's list is full, only values beating its current k-th best are
        candidates: a compare and a scan of the block instead of a top-k over short rows."""
        if block.shape[0] == 0:
            return
        for top, largest in ((self.top, True), (self.bottom, False)):
            theta = top.values[owners, -1].to(block.device)
            mask = block > theta[None, :] if largest else block < theta[None, :]
            r, c = mask.nonzero(as_tuple=True)
            if len(r) == 0:
                continue
            if len(r) > 4 * block.shape[1]:  # lists still filling up: plain top-k
                kk = min(self.k + 1, block.shape[0])
                v, j = torch.topk(block.T, kk, dim=1, largest=largest)
                _merge(top, owners, v.cpu(), j.cpu() + first_partner, largest)
                continue
            _merge_sparse(top, owners, c.cpu(), block[r, c].cpu(), r.cpu() + first_partner, largest)
        if self.summary.bins:
            self.summary.hist[owners] += histogram_rows(block.T, self.summary.lo, self.summary.hi,
                                                        self.summary.bins).cpu()

    def result(self) -> CompositionList:
        n = self.top.values.shape[0]
        owners = torch.arange(n)
        out = []
        for top, largest in ((self.top, True), (self.bottom, False)):
            v, i = _drop_self(top.values, top.indices, owners, self.k, largest)
            i = i.masked_fill(~torch.isfinite(v), -1)
            out.append(TopK(v, i))
        return CompositionList(self.name, out[0], out[1], self.summary)


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


def _moments(summary: Summary, owner: Tensor, partner_sum: Tensor, partner_gram: Tensor,
             count: Tensor, self_score: Tensor | None = None) -> None:
    """Exact Σ and Σ² of each owner's scores ``owner · partner`` without touching the
    [N, N] scores: Σ_j a·b_j = a·(Σ_j b_j) and Σ_j (a·b_j)² = aᵀ(Σ_j b_j b_jᵀ)a. The
    partner set depends only on the owner's layer: sums [L, d] and Grams [L, d, d].
    ``self_score``: the owner's score with itself, counted as zero (zeroed diagonal)."""
    L = partner_sum.shape[0]
    # sums and Grams are accumulated in float64; the quadratic forms run in float32 (the
    # summed terms are all non-negative, so there is no cancellation to fear)
    a = owner.float().reshape(L, -1, owner.shape[-1])
    s1 = torch.einsum("lnd,ld->ln", a.double(), partner_sum).reshape(-1)
    s2 = torch.einsum("lnd,lnd->ln", torch.bmm(a, partner_gram.float()), a).reshape(-1).double()
    if self_score is not None:
        s1, s2 = s1 - self_score, s2 - self_score.square()
    summary.n[:], summary.s1[:], summary.s2[:] = count.double().cpu(), s1.cpu(), s2.cpu()


def _layer_sums(x: Tensor, L: int) -> tuple[Tensor, Tensor]:
    """Per-layer Σx [L, d] and Σxxᵀ [L, d, d] in float64."""
    xl = x.float().reshape(L, -1, x.shape[-1])
    # float32 products of one layer, summed across layers in float64
    return xl.double().sum(1), torch.bmm(xl.transpose(1, 2), xl).double()


def _all_moments(st: dict[str, "_ListState"], L: int, D: int, ins: Tensor, out: Tensor,
                 gate: Tensor | None, in_hat: Tensor, out_hat: Tensor) -> None:
    N = L * D
    dev = ins.device
    layer = torch.arange(N, device=dev) // D
    full = torch.full((N,), N, device=dev)
    later_n, earlier_n = (L - 1 - layer) * D, layer * D
    hats = {"in": in_hat, "out": out_hat}
    for name in COSINE_LISTS:
        if name not in st:
            continue
        a, b = (hats[p] for p in name.split("_"))
        bsum, bgram = (t.sum(0, keepdim=True).expand(L, *t.shape[1:]) for t in _layer_sums(b, L))
        _moments(st[name].summary, a, bsum, bgram, full, (a.double() * b.double()).sum(-1))

    def directed(down: str, up: str, reader: Tensor | None) -> None:
        if reader is None or not (down in st or up in st):
            return
        r_sum, r_gram = _layer_sums(reader, L)
        w_sum, w_gram = _layer_sums(out, L)
        zero_s, zero_g = r_sum[:1] * 0, r_gram[:1] * 0
        # readers of later layers (suffix sums) and writers of earlier layers (prefix sums)
        suf_s = torch.cat([r_sum.flip(0).cumsum(0).flip(0)[1:], zero_s])
        suf_g = torch.cat([r_gram.flip(0).cumsum(0).flip(0)[1:], zero_g])
        pre_s = torch.cat([zero_s, w_sum.cumsum(0)[:-1]])
        pre_g = torch.cat([zero_g, w_gram.cumsum(0)[:-1]])
        if down in st:
            _moments(st[down].summary, out, suf_s, suf_g, later_n)
        if up in st:
            _moments(st[up].summary, reader, pre_s, pre_g, earlier_n)

    directed("virtual_down", "virtual_up", ins)
    directed("gate_virtual_down", "gate_virtual_up", gate)


def neuron_composition(w: ModelWeights, k: int = 10, *, lists: Iterable[str] = ALL_LISTS,
                       bins: int = 100, memory_mb: float = 512, device: str | torch.device = "cpu",
                       progress: bool = True) -> dict[str, CompositionList]:
    """Top-k / bottom-k partners and distribution summaries for every neuron and list.

    Returns {list name: CompositionList}; neuron ids are global (layer * d_mlp + index).
    Gate lists are skipped for non-gated models. Memory: about ``memory_mb`` for the blocks
    plus O(n_neurons × (k + bins) + n_layers × d_model²) for the results and moments.
    """
    lists = list(lists)
    unknown = set(lists) - set(ALL_LISTS)
    if unknown:
        raise ValueError(f"unknown composition lists {sorted(unknown)}; choose from {ALL_LISTS}")
    wanted = [n for n in lists if w.gated or n not in GATE_LISTS]
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
    st = {n: _ListState(n, N, k, *ranges[n], bins) for n in wanted}
    _all_moments(st, L, D, ins, out, gate, in_hat, out_hat)

    B = min(D, block_rows_for(N, memory_mb))
    blocks = [(l, s, min(s + B, D)) for l in range(L) for s in range(0, D, B)]
    for l, s, e in tqdm(blocks, desc="neuron composition", disable=not progress, unit="block"):
        rows = slice(l * D + s, l * D + e)
        diag = (torch.arange(e - s, device=device), torch.arange(rows.start, rows.stop, device=device))
        nxt = (l + 1) * D  # partners of later layers are a suffix, since ids follow layers
        later = slice(nxt, N)
        if "in_in" in st:
            c = in_hat[rows] @ in_hat.T
            c[diag] = 0
            st["in_in"].rows(rows, c, 0, fresh=True)
        if "out_out" in st:
            c = out_hat[rows] @ out_hat.T
            c[diag] = 0
            st["out_out"].rows(rows, c, 0, fresh=True)
        if st.keys() & {"out_in", "in_out", "virtual_down", "virtual_up"}:
            c = out_hat[rows] @ in_hat.T  # [owner writes, partner reads]
            c[diag] = 0
            if "out_in" in st:
                st["out_in"].rows(rows, c, 0, fresh=True)
            if "in_out" in st:  # in_out[m, n] = cos(in_m, out_n) = c[n, m]: the columns
                st["in_out"].cols(slice(0, N), c, rows.start)
            if nxt < N and st.keys() & {"virtual_down", "virtual_up"}:
                v = c[:, nxt:].mul_(out_norm[rows, None]).mul_(in_norm[None, later])
                if "virtual_down" in st:
                    st["virtual_down"].rows(rows, v, nxt, fresh=True)
                if "virtual_up" in st:
                    st["virtual_up"].cols(later, v, rows.start)
            del c
        if gate is not None and nxt < N and st.keys() & set(GATE_LISTS):
            g = out[rows] @ gate[later].T
            if "gate_virtual_down" in st:
                st["gate_virtual_down"].rows(rows, g, nxt, fresh=True)
            if "gate_virtual_up" in st:
                st["gate_virtual_up"].cols(later, g, rows.start)
            del g
    return {n: s.result() for n, s in st.items()}


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
    for l in tqdm(range(L), desc="head composition", disable=not progress, unit="layer"):
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
                  device: str | torch.device = "cpu", progress: bool = True) -> TokenEffects:
    """Top-k and bottom-k vocabulary tokens per neuron for input weight and output effect."""
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
    for s in tqdm(starts, desc="token effects", disable=not progress, unit="block"):
        rows = slice(s, min(s + B, N))
        for kind, x in (("input", ins[rows] @ WE.T), ("output", out[rows] @ WU)):
            for largest, suffix in ((True, "top"), (False, "bottom")):
                v, i = torch.topk(x, kk, dim=1, largest=largest)
                res[f"{kind}_{suffix}"].values[rows] = v.cpu()
                res[f"{kind}_{suffix}"].indices[rows] = i.cpu()
    return TokenEffects(**res)
