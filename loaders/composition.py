"""Weight-based connectivity: neuron↔neuron, neuron↔head and neuron↔token scores, top-k.

Everything is computed in tiles (rows of one layer × a piece of the partners), so memory is
bounded by a few tiles, never ``n_neurons²`` floats (SmolLM2-135M has 46,080 neurons: a dense
matrix would be 8 GB). Each tile is read by a handful of vectorised passes: its histogram
(one bincount for all owners), moments, and the maxima and minima of small groups of
entries. Only the groups that can still hold one of an owner's best k are opened: nothing
below the histogram bin of the k-th largest value seen so far can make the list, so the
few entries above it wait in a pool until one sort merges them into the lists.

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


# --- top-k ---------------------------------------------------------------------------------
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


def _drop_self(values: Tensor, indices: Tensor, owners: Tensor, k: int, largest: bool) -> tuple[Tensor, Tensor]:
    """From k+1 candidates, push the owner itself (if present) to the end and keep k."""
    is_self = indices == owners[:, None]
    bad = -math.inf if largest else math.inf
    values = values.masked_fill(is_self, bad)
    indices = indices.masked_fill(is_self, -1)
    return _select(values, indices, k, largest)


def _rank_keys(values: Tensor, largest: bool) -> Tensor:
    """int64 keys in [0, 2³²) whose ascending order is best-first order of float32 values:
    the IEEE bits read as an integer, with the magnitude bits of negatives flipped."""
    b = values.contiguous().view(torch.int32).long()
    mono = torch.where(b < 0, b ^ 0x7FFFFFFF, b)  # increases with the value
    return (2**31 - 1 - mono) if largest else (mono + 2**31)


class _Best:
    """Best ``kk`` partners per owner, from candidates that arrive in any order.

    Candidates wait in a pool; a merge (one sort of owner-major integer keys) folds them
    into the dense lists when the pools of all lists outgrow POOL (see ``_keep_pools_small``),
    and at the end.
    """

    def __init__(self, n: int, kk: int, largest: bool, device: torch.device) -> None:
        self.n, self.kk, self.largest = n, kk, largest
        self.fill = -math.inf if largest else math.inf
        self.values = torch.full((n, kk), self.fill, device=device)
        self.indices = torch.full((n, kk), -1, dtype=torch.long, device=device)
        self.pool: list[tuple[Tensor, Tensor, Tensor]] = []
        self.pooled = 0

    def add(self, owners: Tensor, values: Tensor, partners: Tensor) -> None:
        if len(owners):
            self.pool.append((owners, values, partners))
            self.pooled += len(owners)

    def merge(self) -> None:
        if not self.pool:
            return
        o = torch.cat([p[0] for p in self.pool])
        v = torch.cat([p[1] for p in self.pool])
        i = torch.cat([p[2] for p in self.pool])
        self.pool, self.pooled = [], 0
        # only the owners the pool touches: often one block of rows
        lo, hi = int(o.min()), int(o.max()) + 1
        held_v, held_i = self.values[lo:hi], self.indices[lo:hi]
        held = torch.isfinite(held_v).view(-1).nonzero().squeeze(1)
        o = torch.cat([held // self.kk + lo, o])
        v = torch.cat([held_v.reshape(-1).index_select(0, held), v])
        i = torch.cat([held_i.reshape(-1).index_select(0, held), i])
        order = torch.sort(((o - lo) << 32) | _rank_keys(v, self.largest)).indices
        o, v, i = (t.index_select(0, order) for t in (o, v, i))
        counts = torch.bincount(o - lo, minlength=hi - lo)
        rank = torch.arange(len(o), device=o.device) - (counts.cumsum(0) - counts).index_select(0, o - lo)
        keep = (rank < self.kk).nonzero().squeeze(1)
        slot = (o - lo).index_select(0, keep) * self.kk + rank.index_select(0, keep)
        held_v.fill_(self.fill)
        held_i.fill_(-1)
        held_v.view(-1).index_copy_(0, slot, v.index_select(0, keep))
        held_i.view(-1).index_copy_(0, slot, i.index_select(0, keep))


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


class _Bins:
    """Bin index (int32) on ``bins`` equal bins of [lo, hi]; values outside fall into the
    end bins. The bin never decreases as the value grows: the candidate filters rely on
    that, through ``floor`` and ``ceil``."""

    def __init__(self, lo: float, hi: float, bins: int, device: torch.device | None = None) -> None:
        self.bins, self.scale = bins, bins / (hi - lo)
        self.shift = -lo * self.scale
        edge = (torch.arange(bins + 1, dtype=torch.float64) - self.shift) / self.scale
        slack = (edge.abs() + 1 / self.scale) * 1e-5  # a few rounding errors of the bin arithmetic
        inf = torch.full((2,), math.inf, dtype=torch.float64)
        # floor[b + 1] (b = -1 .. bins-1): no value below it gets a bin >= b
        self.floor = torch.cat([-inf, (edge - slack)[1:bins]]).float().to(device)
        # ceil[b] (b = 0 .. bins): no value above it gets a bin <= b
        self.ceil = torch.cat([(edge + slack)[1:bins], inf]).float().to(device)

    def __call__(self, x: Tensor, scratch: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        f = torch.mul(x, self.scale, out=scratch).add_(self.shift).clamp_(0, self.bins - 1)
        # truncation floors the non-negative values
        return f.to(torch.int32) if out is None else out.copy_(f)

    def thresholds(self, hist: Tensor, kk: int) -> tuple[Tensor, Tensor]:
        """Per owner (a row of ``hist``), values below / above which nothing can be among
        the kk largest / smallest values counted so far: the edges of the bins that the kk-th
        largest and smallest fall in (±inf while fewer than kk were counted)."""
        c = hist.cumsum(1)
        rest = c[:, -1] - kk
        top = (c <= rest[:, None]).sum(1) - (rest < 0).long()  # -1 .. bins-1
        bottom = (c < kk).sum(1)  # 0 .. bins
        return self.floor.index_select(0, top + 1), self.ceil.index_select(0, bottom)


def histogram_rows(x: Tensor, lo: float, hi: float, bins: int) -> Tensor:
    """Histogram of each row of x [R, C] on ``bins`` equal bins of [lo, hi] -> [R, bins];
    values outside the range count in the end bins."""
    R = x.shape[0]
    t = _Bins(lo, hi, bins)(x)
    # one bincount for all rows: row r counts in bins r·bins ... r·bins + bins - 1
    t.add_((torch.arange(R, device=x.device, dtype=torch.int32) * bins)[:, None])
    return torch.bincount(t.reshape(-1), minlength=R * bins).view(R, bins)


def _group(n: int, most: int) -> int:
    """The largest divisor of n that is at most ``most``."""
    return next(g for g in range(max(1, min(most, n)), 0, -1) if n % g == 0)


def _candidates(x: Tensor, high: Tensor, low: Tensor, rows_own: bool,
                passing: float) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """(owner, partner, value) of the entries of tile x that reach their owner's ``high``
    threshold (>=), and of those that reach its ``low`` one (<=). Owners are the rows
    (``rows_own``) or the columns. The full tile is read by two vectorised reductions
    (maximum and minimum of groups of entries); only the entries of the groups that pass
    are looked at one by one. ``passing``: the expected share of entries that pass, which
    sets the group size (small groups for many passes, big ones for few)."""
    R, C = x.shape
    # per entry, testing the groups costs 1/g and opening them ~5 g·passing (an opened
    # entry costs ~5x a tested group): g ~ sqrt(0.2 / passing)
    most = int(min(64, max(2, round((0.2 / max(passing, 1e-9)) ** 0.5))))
    if rows_own:
        g = _group(C, most)
        m = C // g  # group j of row r: columns j, j + m, ..., j + (g - 1) m
        v = x.view(R, g, m)
        hi, lo = high[:, None], low[:, None]
        q = ((v.amax(1) >= hi) | (v.amin(1) <= lo)).view(-1).nonzero().squeeze(1)
        owner, j = q // m, q % m
        partner = j[:, None] + m * torch.arange(g, device=x.device)
        pos = owner[:, None] * C + partner
    else:
        g = _group(R, most)
        m = R // g
        v = x.view(g, m, C)
        hi, lo = high[None, :], low[None, :]
        q = ((v.amax(0) >= hi) | (v.amin(0) <= lo)).view(-1).nonzero().squeeze(1)
        j, owner = q // C, q % C
        partner = j[:, None] + m * torch.arange(g, device=x.device)
        pos = partner * C + owner[:, None]
    v = x.view(-1).index_select(0, pos.view(-1)).view(pos.shape)
    partner, out = partner.view(-1), []
    for keep in (v >= high.index_select(0, owner)[:, None], v <= low.index_select(0, owner)[:, None]):
        k = keep.view(-1).nonzero().squeeze(1)
        out.append((owner.index_select(0, k // g), partner.index_select(0, k), v.view(-1).index_select(0, k)))
    return out[0], out[1]


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


_SELECT_BINS = 64  # bins that steer the candidate filters when no histogram is asked for


class _ListState:
    """Running top/bottom lists, moments and histogram of one list, fed tile by tile."""

    def __init__(self, name: str, n: int, k: int, lo: float, hi: float, bins: int,
                 device: torch.device) -> None:
        self.name, self.k, self.n_owners = name, k, n
        self.lo, self.hi, self.bins = lo, hi, bins
        # k+1 candidates so the owner itself can be dropped at the end
        self.top = _Best(n, k + 1, True, device)
        self.bottom = _Best(n, k + 1, False, device)
        self.nb = bins or _SELECT_BINS
        self.bin_of = _Bins(lo, hi, self.nb, device)
        self.hist = torch.zeros(n, self.nb, dtype=torch.long, device=device)
        self.n = torch.zeros(n, dtype=torch.float64, device=device)
        self.s1 = torch.zeros(n, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(n, dtype=torch.float64, device=device)

    def count(self, t: Tensor, first: int, rows_own: bool, offsets: Tensor) -> None:
        """Histogram update from the tile's bin indices t, shifted in place so that owner i
        counts in bins i·nb ...: ``offsets`` [R, 1] or [1, C] (int32)."""
        n = t.shape[0] if rows_own else t.shape[1]
        idx = t.add_(offsets)
        self.hist[first:first + n] += torch.bincount(idx.view(-1), minlength=n * self.nb).view(n, self.nb)

    def moments(self, x: Tensor, first: int, rows_own: bool, scratch: Tensor) -> None:
        R, C = x.shape
        if rows_own:
            own = slice(first, first + R)
            self.n[own] += C
            self.s1[own] += x.sum(1)
            self.s2[own] += torch.linalg.vector_norm(x, dim=1).double().square()
        else:
            own = slice(first, first + C)
            self.n[own] += R
            self.s1[own] += x.sum(0)
            self.s2[own] += torch.mul(x, x, out=scratch).sum(0)

    def uncount(self, owners: Tensor, values: Tensor) -> None:
        """Take one fed entry per owner (distinct owners) back out of the moments and the
        histogram: correlations feed each neuron's own entry with its tile, but their
        summaries leave it out."""
        v = values.double()
        self.n[owners] -= 1
        self.s1[owners] -= v
        self.s2[owners] -= v.square()
        self.hist[owners, self.bin_of(values).long()] -= 1

    def select(self, x: Tensor, first: int, partner0: int, rows_own: bool) -> None:
        n = x.shape[0] if rows_own else x.shape[1]
        high, low = self.bin_of.thresholds(self.hist[first:first + n], self.top.kk)
        # a new tile passes about (kk + the threshold bins' share) per side of what was seen
        passing = min(1.0, 3 * self.top.kk / max(1.0, float(self.n[first])))
        found = _candidates(x, high, low, rows_own, passing)
        for best, (o, p, v) in zip((self.top, self.bottom), found):
            best.add(o + first, v, p + partner0)

    def result(self) -> CompositionList:
        owners = torch.arange(self.n_owners, device=self.n.device)
        out = []
        for best in (self.top, self.bottom):
            best.merge()
            v, i = _drop_self(best.values, best.indices, owners, self.k, best.largest)
            i = i.masked_fill(~torch.isfinite(v), -1)
            out.append(TopK(v.cpu(), i.cpu()))
        hist = self.hist if self.bins else self.hist[:, :0]
        summary = Summary(self.lo, self.hi, self.bins, self.n.cpu(), self.s1.cpu(), self.s2.cpu(), hist.cpu())
        return CompositionList(self.name, out[0], out[1], summary)


class _Tiles:
    """Scratch space for one tile of each kind, reused across tiles (``out=`` buffers)."""

    def __init__(self, R: int, W: int, device: torch.device) -> None:
        self.x = torch.empty(R * W, device=device)
        self.f = torch.empty(R * W, device=device)
        self.t = torch.empty(R * W, dtype=torch.int32, device=device)
        self.ar = torch.arange(max(R, W), dtype=torch.int32, device=device)

    def product(self, a: Tensor, b: Tensor) -> Tensor:
        """a @ bᵀ into the tile buffer."""
        return torch.mm(a, b.T, out=self.x[: a.shape[0] * b.shape[0]].view(a.shape[0], b.shape[0]))

    def feed(self, x: Tensor, r0: int, c0: int, by_row: _ListState | None, by_col: _ListState | None) -> None:
        """Tile x = scores of rows r0.. against columns c0..: the rows own its entries in
        ``by_row``, the columns in ``by_col`` (two lists with the same histogram range)."""
        R, C = x.shape
        scratch = self.f[: R * C].view(R, C)
        t = (by_row or by_col).bin_of(x, scratch, self.t[: R * C].view(R, C))
        nb = (by_row or by_col).nb
        row_off, col_off = (self.ar[:R] * nb)[:, None], (self.ar[:C] * nb)[None, :]
        if by_row is not None:
            by_row.count(t, r0, True, row_off)
        if by_col is not None:
            by_col.count(t.sub_(row_off) if by_row is not None else t, c0, False, col_off)
        for lst, rows_own, first, partner0 in ((by_row, True, r0, c0), (by_col, False, c0, r0)):
            if lst is not None:
                lst.moments(x, first, rows_own, scratch)
                lst.select(x, first, partner0, rows_own)


POOL = 1 << 20  # candidates waiting in all pools together before the biggest pool merges


def _keep_pools_small(states: Iterable["_ListState"]) -> None:
    bests = [b for s in states for b in (s.top, s.bottom)]
    while sum(b.pooled for b in bests) > POOL:
        max(bests, key=lambda b: b.pooled).merge()


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


TILE_ROWS, TILE_COLS = 1024, 1536  # tile shape: efficient products, scratch that stays in cache


def _pieces(a: int, b: int, width: int) -> list[tuple[int, int]]:
    """[start, stop) of near-equal pieces of at most ``width`` covering a..b."""
    if b <= a:
        return []
    n = -(-(b - a) // width)
    size = -(-(b - a) // n)
    return [(s, min(s + size, b)) for s in range(a, b, size)]


def neuron_composition(w: ModelWeights, k: int = 10, *, lists: Iterable[str] = ALL_LISTS,
                       bins: int = 100, memory_mb: float = 512, device: str | torch.device = "cpu",
                       progress: bool = True) -> dict[str, CompositionList]:
    """Top-k / bottom-k partners and distribution summaries for every neuron and list.

    Returns {list name: CompositionList}; neuron ids are global (layer * d_mlp + index).
    Gate lists are skipped for non-gated models. Memory: three scratch tiles within
    ``memory_mb`` (about 12 MB by default: tiles are sized for the cache, the budget only
    caps them), candidate pools up to ``POOL`` entries, and O(n_neurons × (k + bins)) for
    the results.
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
    st = {n: _ListState(n, N, k, *ranges[n], bins, device) for n in wanted}
    get = st.get

    # rows of one layer at a time, against pieces of the partners; 3 scratch tiles in the budget
    E = int(memory_mb * 2**20 / 12)
    R = max(1, min(D, TILE_ROWS, math.isqrt(E)))
    W = max(R, min(TILE_COLS, E // R))
    ws = _Tiles(R, W, device)
    row_chunks = [(l, l * D + s, l * D + e) for l in range(L) for s, e in _pieces(0, D, R)]
    for l, r0, r1 in tqdm(row_chunks, desc="neuron composition", disable=not progress, unit="block"):
        rows, nxt = slice(r0, r1), (l + 1) * D  # partners of later layers: ids nxt..N-1
        # in_in and out_out are symmetric: the rows' own square serves the rows' lists, the
        # columns beyond it serve the rows' lists and the columns' lists
        for name, hat in (("in_in", in_hat), ("out_out", out_hat)):
            if name in st:
                x = ws.product(hat[rows], hat[rows])
                x.diagonal().zero_()
                ws.feed(x, r0, r0, st[name], None)
                for c0, c1 in _pieces(r1, N, W):
                    ws.feed(ws.product(hat[rows], hat[c0:c1]), r0, c0, st[name], st[name])
        cos_lists = (get("out_in"), get("in_out"))
        virtual = (get("virtual_down"), get("virtual_up"))
        for c0, c1 in _pieces(0, nxt, W) + _pieces(nxt, N, W) if any(cos_lists + virtual) else []:
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
            for c0, c1 in _pieces(nxt, N, W):
                ws.feed(ws.product(out[rows], gate[c0:c1]), r0, c0, *gated)
        _keep_pools_small(st.values())
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
        for kind, a, b in (("input", ins, WE.T), ("output", out, WU)):
            x = a[rows] @ b  # one [B, V] product at a time
            for largest, suffix in ((True, "top"), (False, "bottom")):
                v, i = torch.topk(x, kk, dim=1, largest=largest)
                res[f"{kind}_{suffix}"].values[rows] = v.cpu()
                res[f"{kind}_{suffix}"].indices[rows] = i.cpu()
            del x
    return TokenEffects(**res)
