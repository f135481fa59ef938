"""Streaming top-k and distribution summaries: best and worst ``k`` partners per owner, with
each owner's mean, std and histogram, from score tiles fed in any order.

A dense ``owners × partners`` score matrix never exists: tiles of it (rows = some owners,
columns = some partners, or the other way round) are fed one by one. Each tile is read by a
handful of vectorised passes: its histogram (one bincount for all owners), moments, and the
maxima and minima of small groups of entries. Only the groups that can still hold one of an
owner's best k are opened: nothing below the histogram bin of the k-th largest value seen so
far can make the list, so the few entries above it wait in a pool until one sort merges them
into the lists. Weight composition (composition.py) and activation correlation
(correlations.py) both rank their partners with it.

    lists = StreamingLists("pearson", n, k=10, lo=-1.0, hi=1.0, bins=100, device=torch.device("cpu"))
    tiles = Tiles(TILE_ROWS, TILE_COLS, lists.device)
    for r0, r1 in pieces(0, n, TILE_ROWS):
        for c0, c1 in pieces(r1, n, TILE_COLS):          # a symmetric score: tiles above the diagonal
            tiles.feed(scores(r0, r1, c0, c1), r0, c0, lists, lists)
        keep_pools_small([lists])
    ranked = lists.result()                              # RankedList: top, bottom, summary
    ranked.top.rows(5)                                   # [(partner id, score), ...], best first
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch

Tensor = torch.Tensor


@dataclass
class TopK:
    """Best ``k`` partners per owner: values [N, k] and global indices [N, k] (-1 = none).

        ranked.top.rows(5)     # [(partner id, weight), ...], best first
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
    into the dense lists when the pools of all lists outgrow POOL (see ``keep_pools_small``),
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

        s = ranked.summary
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
class RankedList:
    """One list of every owner: top-k, bottom-k (self excluded) and the distribution summary.

        ranked = lists.result()
        ranked.top.rows(0), ranked.bottom.rows(0), ranked.summary.mean[0]
    """

    name: str
    top: TopK
    bottom: TopK
    summary: Summary


_SELECT_BINS = 64  # bins that steer the candidate filters when no histogram is asked for


class StreamingLists:
    """Running top/bottom lists, moments and histogram of one list, fed tile by tile.

        lists = StreamingLists("in_out", n_owners, k=10, lo=-1.0, hi=1.0, bins=100, device=device)
        Tiles(TILE_ROWS, TILE_COLS, device).feed(tile, r0, c0, by_row=None, by_col=lists)
        lists.result().top.rows(7)
    """

    def __init__(self, name: str, n: int, k: int, lo: float, hi: float, bins: int,
                 device: torch.device) -> None:
        self.name, self.k, self.n_owners, self.device = name, k, n, device
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

    def result(self, make: type[RankedList] = RankedList) -> RankedList:
        """The lists as they stand (pools merged), each owner's own entry dropped; ``make``: the
        class of the answer (a subclass of RankedList)."""
        owners = torch.arange(self.n_owners, device=self.n.device)
        out = []
        for best in (self.top, self.bottom):
            best.merge()
            v, i = _drop_self(best.values, best.indices, owners, self.k, best.largest)
            i = i.masked_fill(~torch.isfinite(v), -1)
            out.append(TopK(v.cpu(), i.cpu()))
        hist = self.hist if self.bins else self.hist[:, :0]
        summary = Summary(self.lo, self.hi, self.bins, self.n.cpu(), self.s1.cpu(), self.s2.cpu(), hist.cpu())
        return make(self.name, out[0], out[1], summary)


class Tiles:
    """Scratch space for one tile of each kind, reused across tiles (``out=`` buffers), and
    the feeding of a tile to the lists that own its rows and its columns.

        tiles = Tiles(TILE_ROWS, TILE_COLS, device)
        tiles.feed(tiles.product(a[r0:r1], b[c0:c1]), r0, c0, by_row=rows_list, by_col=None)
    """

    def __init__(self, R: int, W: int, device: torch.device) -> None:
        self.x = torch.empty(R * W, device=device)
        self.f = torch.empty(R * W, device=device)
        self.t = torch.empty(R * W, dtype=torch.int32, device=device)
        self.ar = torch.arange(max(R, W), dtype=torch.int32, device=device)

    def product(self, a: Tensor, b: Tensor) -> Tensor:
        """a @ bᵀ into the tile buffer."""
        return torch.mm(a, b.T, out=self.x[: a.shape[0] * b.shape[0]].view(a.shape[0], b.shape[0]))

    def feed(self, x: Tensor, r0: int, c0: int, by_row: StreamingLists | None, by_col: StreamingLists | None) -> None:
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


TILE_ROWS, TILE_COLS = 1024, 1536  # tile shape: efficient products, scratch that stays in cache


def pieces(a: int, b: int, width: int) -> list[tuple[int, int]]:
    """[start, stop) of near-equal pieces of at most ``width`` covering a..b."""
    if b <= a:
        return []
    n = -(-(b - a) // width)
    size = -(-(b - a) // n)
    return [(s, min(s + size, b)) for s in range(a, b, size)]


POOL = 1 << 20  # candidates waiting in all pools together before the biggest pool merges


def keep_pools_small(states: Iterable[StreamingLists]) -> None:
    """Merge the biggest pools until all pools of ``states`` together hold at most POOL
    candidates: call it after each row of tiles to bound memory."""
    bests = [b for s in states for b in (s.top, s.bottom)]
    while sum(b.pooled for b in bests) > POOL:
        max(bests, key=lambda b: b.pooled).merge()
