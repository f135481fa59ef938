"""Streaming Pearson correlation between all neuron pairs, within a memory budget.

Universal Neurons keeps a float64 ``[L, D, L, D]`` cross-sum: 11 GB for GPT-2 small, 17 GB
(+ a float32 batch product) for SmolLM2-135M's 46,080 neurons. We never hold it. The
matrix is symmetric, so only its upper triangle is accumulated, in row blocks: the block of
rows a..b-1 accumulates ``Σ x_r x_c`` against columns a..N-1 (float32 per batch, summed
into float64), plus ``Σx``/``Σx²``. When the block is done its correlations feed the
running top-k, bottom-k and summary of its rows and, transposed, of the later columns; then
the block is freed. Each pair is multiplied once: ``T · N² / 2`` multiply-adds.

Trade-off: memory ``12 · rows · columns`` bytes per block (4 while the corpus is at most
``StreamingCorrelation.FLUSH`` tokens: float32 sums only) for one pass over the corpus per
block. With the whole matrix inside the budget it is one pass and can run inside the
harvest; otherwise either pass a callable that replays the batches (each pass re-runs the
forward pass) or a ``cache_dir``: the first pass stores the activations there (N × 4 bytes
per token in float32, N × 2 in float16) and the other passes read them back. SmolLM2-135M
with the default 2 GiB budget: 7 passes (blocks of 3,883 rows and more as the columns
shrink); 10k tokens cache 1.8 GB in float32.

To limit cancellation, values are shifted by each neuron's mean over the first batch of a
pass before summing (Pearson is shift-invariant).

    corr = correlate(lambda: acts_batches(), n_neurons=w.n_neurons, k=10, memory_mb=2048)
    corr.top.rows(7)          # [(neuron id, r), ...], most correlated first (self excluded)
    corr.summary.mean[7]      # mean correlation of neuron 7 with all others
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from neurograph.progress import track

from .topk import TILE_COLS, TILE_ROWS, StreamingLists, Summary, Tiles, TopK, keep_pools_small, pieces

Tensor = torch.Tensor
Batches = Callable[[], Iterable[Tensor]] | Iterable[Tensor]


@dataclass
class CorrelationResult:
    """Top-k / bottom-k correlated neurons per neuron (self excluded), their summary
    (mean, std, 100-bin histogram on [-1, 1] over all other neurons) and the token count.

        res = correlate(batches, n_neurons=72, k=5)
        res.top.rows(3), res.bottom.rows(3), res.summary.mean[3], res.n_tokens
    """

    top: TopK
    bottom: TopK
    summary: Summary
    n_tokens: int


def rows_for_budget(n: int, memory_mb: float) -> int:
    """Row-block size whose accumulators against n columns (float64 + float32 batch product)
    fit memory_mb."""
    return max(1, min(n, int(memory_mb * 2**20 / (12 * n))))


def row_blocks(n: int, memory_mb: float) -> list[range]:
    """The passes of :func:`correlate`: row blocks of the upper triangle, block a..b-1
    against columns a..n-1, each within memory_mb. Later blocks have fewer columns, so more
    rows: about half the passes of full rows."""
    blocks, a = [], 0
    while a < n:
        r = rows_for_budget(n - a, memory_mb)
        blocks.append(range(a, min(a + r, n)))
        a += r
    return blocks


class StreamingCorrelation:
    """Accumulates correlations of neurons ``rows`` (a range of global ids) with all ``n``,
    or with only those from ``rows.start`` on (``upper``: the upper triangle's rows).

        sc = StreamingCorrelation(n=1000, rows=range(0, 1000))
        for x in batches:          # x: [tokens, n] activations of valid positions
            sc.add(x)
        top, bottom, summary = sc.finish(k=10)
    """

    FLUSH = 16384  # tokens summed in float32 before joining the float64 accumulator
    SUB = 1024  # upper: rows per product; each takes the columns from its first row on

    def __init__(self, n: int, rows: range | None = None, *, upper: bool = False,
                 device: str | torch.device = "cpu") -> None:
        self.n = n
        self.rows = rows if rows is not None else range(n)
        self.upper = upper
        self.col0 = self.rows.start if upper else 0  # columns col0..n-1
        self.device = torch.device(device)
        R = len(self.rows)
        self.count = 0
        self.shift: Tensor | None = None
        self.sum = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.sumsq = torch.zeros(n, dtype=torch.float64, device=self.device)
        # upper: the block's own square is a triangle too, in sub-blocks of SUB rows (the
        # accumulators keep their full shape; the entries left of a sub-block stay unused)
        self.subs = [(s, min(s + self.SUB, R)) for s in range(0, R, self.SUB)] if upper else [(0, R)]
        # the float64 sums are made at the first flush: up to FLUSH tokens (the demo build
        # correlates 4,096) the block takes 4 bytes an entry, not 12
        self.cross: Tensor | None = None
        self._buf = torch.zeros(R, n - self.col0, dtype=torch.float32, device=self.device)
        self._buf_tokens = 0

    def add(self, x: Tensor) -> None:
        """x: [tokens, n] activations (padding/BOS already removed)."""
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"expected activations [tokens, {self.n}], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        x = x.to(self.device, torch.float32)
        if self.shift is None:
            self.shift = x.mean(dim=0)
        x = x - self.shift
        r, cols = x[:, self.rows.start:self.rows.stop], x[:, self.col0:]
        # batch products add up in a float32 buffer that is flushed into the float64 sums
        # every FLUSH tokens: a float64 add per batch would cost as much as the product
        for a, b in self.subs:
            self._buf[a:b, a:].addmm_(r[:, a:b].T, cols[:, a:])
        self._buf_tokens += x.shape[0]
        self.sum += x.sum(dim=0).double()
        self.sumsq += x.square().sum(dim=0).double()
        self.count += x.shape[0]
        if self._buf_tokens >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._buf_tokens:
            if self.cross is None:
                self.cross = torch.empty(self._buf.shape, dtype=torch.float64, device=self.device)
                self.cross.copy_(self._buf)
            else:
                # a few rows at a time: a float64 += float32 makes a float64 copy of the addend
                step = max(1, (1 << 22) // max(1, self._buf.shape[1]))
                for a in range(0, self._buf.shape[0], step):
                    self.cross[a:a + step] += self._buf[a:a + step]
            self._buf.zero_()
            self._buf_tokens = 0

    def _sums(self) -> Tensor:
        """Σxy so far: the float64 sums, or the float32 ones while no flush was needed."""
        if self.cross is None:
            return self._buf
        self._flush()
        return self.cross

    def correlations(self, a: int = 0, b: int | None = None, c: int = 0, d: int | None = None) -> Tensor:
        """The Pearson block of this block's rows a..b-1 against its columns c..d-1 (local
        indices; all by default; column j is neuron col0 + j), float32, 0 where a neuron is
        constant."""
        sums = self._sums()
        b = len(self.rows) if b is None else b
        d = self.n - self.col0 if d is None else d
        n = max(self.count, 1)
        mean = self.sum / n
        std = (self.sumsq / n - mean.square()).clamp(min=0).sqrt()
        inv = torch.where(std > 0, 1 / std, torch.zeros((), dtype=std.dtype, device=std.device))
        rs, cs = slice(self.rows.start + a, self.rows.start + b), slice(self.col0 + c, self.col0 + d)
        # E[xy] - E[x]E[y] in float64 (it cancels), the rest in float32
        cov = torch.addr(sums[a:b, c:d].double(), mean[rs], mean[cs], beta=1 / n, alpha=-1).float()
        return cov.mul_(inv[rs, None].float()).mul_(inv[None, cs].float()).clamp_(-1, 1)

    def fold(self, lists: StreamingLists, tiles: Tiles | None = None) -> None:
        """Feed the block's correlations to ``lists`` (owners: all n neurons), one cache-sized
        tile at a time: each row's partners and, with ``upper``, each later column's partners
        among the rows. Each owner's own entry is taken back out of its summary."""
        if self.cross is not None:  # no more batches: free the float32 sums
            self._flush()
            self._buf = torch.zeros(0, device=self.device)
        ws = tiles or Tiles(TILE_ROWS, TILE_COLS, self.device)
        first, C = self.rows.start, self.n - self.col0
        for s, e in self.subs:
            # columns of the sub-block's own square (full: its rows own them all), then the
            # later ones, owned by the rows and by the columns
            own = pieces(s, e, TILE_COLS) if self.upper else pieces(0, C, TILE_COLS)
            later = pieces(e, C, TILE_COLS) if self.upper else []
            for a in range(s, e, TILE_ROWS):
                b = min(a + TILE_ROWS, e)
                for (c, d), both in [(p, False) for p in own] + [(p, True) for p in later]:
                    x = self.correlations(a, b, c, d)
                    ws.feed(x, first + a, self.col0 + c, lists, lists if both else None)
                    lo, hi = max(first + a, self.col0 + c), min(first + b, self.col0 + d)
                    if lo < hi:  # the owners' own entries: counted, not an edge
                        ids = torch.arange(lo, hi, device=x.device)
                        lists.uncount(ids, x[ids - first - a, ids - self.col0 - c])
                keep_pools_small([lists])

    def finish(self, k: int, bins: int = 100) -> tuple[TopK, TopK, Summary]:
        """Top-k, bottom-k (self excluded) and summary for this block's rows (all columns)."""
        if self.upper:
            raise ValueError("an upper-triangle block lacks its rows' earlier partners: use correlate()")
        lists = StreamingLists("pearson", self.n, k, -1.0, 1.0, bins, self.device)
        self.fold(lists)
        res = lists.result()
        rs = slice(self.rows.start, self.rows.stop)
        s = res.summary
        return (TopK(res.top.values[rs], res.top.indices[rs]), TopK(res.bottom.values[rs], res.bottom.indices[rs]),
                Summary(s.lo, s.hi, s.bins, s.n[rs], s.s1[rs], s.s2[rs], s.hist[rs]))


def owner_passes(owners: Iterable[range], n: int, memory_mb: float) -> list[list[range]]:
    """Passes for a shard's ``owners`` (ranges of global ids): full-width row blocks (all n
    columns) within the budget, several blocks sharing a pass while their rows fit it."""
    per = rows_for_budget(n, memory_mb)
    blocks = [range(a, min(a + per, r.stop)) for r in owners for a in range(r.start, r.stop, per)]
    passes: list[list[range]] = []
    for b in blocks:
        if passes and sum(map(len, passes[-1])) + len(b) <= per:
            passes[-1].append(b)
        else:
            passes.append([b])
    return passes


def correlate(batches: Batches, n_neurons: int, k: int = 10, *, memory_mb: float = 2048,
              bins: int = 100, device: str | torch.device = "cpu", progress: bool = True,
              total: int | None = None, cache_dir: str | Path | None = None,
              cache_dtype: torch.dtype = torch.float32, owners: Iterable[range] | None = None) -> CorrelationResult:
    """Pearson correlation of every neuron with every other over the batches.

    ``batches`` yields [tokens, n_neurons] activations. When the budget asks for more than
    one pass, either ``batches`` is a callable returning a fresh iterable (each pass re-runs
    it: the forward pass repeats), or ``cache_dir`` is given: the first pass stores every
    batch there (``cache_dtype``; float16 halves the disk for ~1e-3 error in r) and the
    other passes read it back instead of recomputing.

    ``owners`` (a shard: ranges of global ids, e.g. one per layer): only those neurons' lists,
    from full rows against every neuron (twice the multiply-adds per pair of the symmetric
    whole run, but each shard reads only its own rows); the other neurons' lists stay empty.
    """
    N = n_neurons
    if owners is None:
        groups = [[rows] for rows in row_blocks(N, memory_mb)]
    else:
        groups = owner_passes(owners, N, memory_mb)
    passes = len(groups)
    if passes > 1 and cache_dir is not None:
        batches = _DiskReplay(batches, Path(cache_dir), cache_dtype)
    elif passes > 1 and not callable(batches):
        raise ValueError(f"{N} neurons in {memory_mb} MB need {passes} passes over the corpus: "
                         "pass a callable that replays the batches, a cache_dir, or raise memory_mb")
    lists = StreamingLists("pearson", N, k, -1.0, 1.0, bins, torch.device(device))
    tiles = Tiles(TILE_ROWS, TILE_COLS, torch.device(device))
    n_tokens = 0
    for p, group in enumerate(groups):
        scs = [StreamingCorrelation(N, rows, upper=owners is None, device=device) for rows in group]
        it = batches() if callable(batches) else batches
        desc = f"correlations pass {p + 1}/{passes}" if passes > 1 else "correlations"
        for x in track(it, desc, total=total, enabled=progress):
            for sc in scs:
                sc.add(x)
        for sc in scs:
            sc.fold(lists, tiles)
            n_tokens = sc.count
        del scs
    res = lists.result()
    return CorrelationResult(res.top, res.bottom, res.summary, n_tokens)


class _DiskReplay:
    """Callable replay of a batch source: the first call streams it and stores each batch
    under ``folder``; later calls read the stored batches."""

    def __init__(self, source: Batches, folder: Path, dtype: torch.dtype) -> None:
        self.source, self.folder, self.dtype, self.n = source, folder, dtype, None
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self) -> Iterator[Tensor]:
        if self.n is None:
            return self._record()
        return (torch.load(self.folder / f"batch{i:06d}.pt").float() for i in range(self.n))

    def _record(self) -> Iterator[Tensor]:
        n = 0
        for x in (self.source() if callable(self.source) else self.source):
            x = x.to("cpu", self.dtype)
            torch.save(x.clone(), self.folder / f"batch{n:06d}.pt")
            n += 1
            yield x.float()
        self.n = n


def flatten_activations(tokens: Tensor, acts: Tensor, ignore_ids: Iterable[int] = ()) -> Tensor:
    """[n_layers, B, T, d_mlp] MLP activations -> [valid tokens, n_layers * d_mlp], dropping
    positions whose token is in ``ignore_ids`` (BOS, padding)."""
    L, B, T, D = acts.shape
    x = acts.permute(1, 2, 0, 3).reshape(B * T, L * D)
    ids = list(ignore_ids)
    if ids:
        keep = ~torch.isin(tokens.reshape(-1).to(x.device), torch.tensor(ids, device=x.device))
        x = x[keep]
    return x


def bridge_mlp_activations(model: Any, contexts: Tensor, batch_size: int = 8,
                           start: int = 0) -> Iterator[tuple[int, Tensor, Tensor]]:
    """(first index, tokens [B, T], MLP activations [n_layers, B, T, d_mlp]) per batch, read
    from ``blocks.{l}.mlp.hook_post`` of ``model.bridge`` (fallback when
    ``loaders.activations`` is not installed)."""
    bridge = model.bridge
    names = [f"blocks.{l}.mlp.hook_post" for l in range(model.info.n_layers)]
    wanted = set(names)
    with torch.no_grad():
        for i in range(start, len(contexts), batch_size):
            toks = torch.as_tensor(contexts[i:i + batch_size])
            _, cache = bridge.run_with_cache(toks, names_filter=lambda n: n in wanted)
            yield i, toks, torch.stack([cache[n].float().cpu() for n in names])


def _mlp_activation_source() -> Callable[..., Iterator[tuple[int, Tensor, Tensor]]]:
    try:  # the shared harvest iterator, when present
        from .activations import iter_mlp_activations
        return iter_mlp_activations
    except ImportError:
        return bridge_mlp_activations


def activation_batches(model: Any, contexts: Tensor, *, batch_size: int = 8,
                       ignore_ids: Iterable[int] = ()) -> Callable[[], Iterator[Tensor]]:
    """A replayable source of flattened activations ([valid tokens, n_neurons] per batch)."""
    source = _mlp_activation_source()
    ids = tuple(ignore_ids)

    def replay() -> Iterator[Tensor]:
        for _first, toks, acts in source(model, contexts, batch_size, 0):
            yield flatten_activations(toks, acts, ids)

    return replay
