"""Streaming Pearson correlation between all neuron pairs, within a memory budget.

Universal Neurons keeps a float64 ``[L, D, L, D]`` cross-sum: 11 GB for GPT-2 small, 17 GB
(+ a float32 batch product) for SmolLM2-135M's 46,080 neurons. We never hold it. The
matrix is symmetric, so only its upper triangle is accumulated, in row blocks: the block of
rows a..b-1 accumulates ``Σ x_r x_c`` against columns a..N-1 (float32 per batch, summed
into float64), plus ``Σx``/``Σx²``. When the block is done its correlations feed the
running top-k, bottom-k and summary of its rows and, transposed, of the later columns; then
the block is freed. Each pair is multiplied once: ``T · N² / 2`` multiply-adds.

Trade-off: memory ``12 · rows · columns`` bytes per block for one pass over the corpus per
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

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from .composition import Summary, TopK, _drop_self

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
    FINISH_ENTRIES = 1 << 22  # entries per row chunk of fold(): its float64 temporaries stay ~100 MB

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
        self.cross = torch.zeros(R, n - self.col0, dtype=torch.float64, device=self.device)
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
            self.cross += self._buf
            self._buf.zero_()
            self._buf_tokens = 0

    def correlations(self, a: int = 0, b: int | None = None, c: int = 0) -> Tensor:
        """The Pearson block of this block's rows a..b-1 (local indices; all by default)
        against columns col0+c..n-1, float32 (0 where a neuron is constant)."""
        self._flush()
        b = len(self.rows) if b is None else b
        n = max(self.count, 1)
        mean = self.sum / n
        std = (self.sumsq / n - mean.square()).clamp(min=0).sqrt()
        rs, cs = slice(self.rows.start + a, self.rows.start + b), slice(self.col0 + c, self.n)
        cov = self.cross[a:b, c:] / n
        cov -= mean[rs, None] * mean[None, cs]
        denom = std[rs, None] * std[None, cs]
        cov /= denom.clamp(min=1e-300)
        return cov.masked_fill_(denom == 0, 0).clamp_(-1, 1).float()

    def fold(self, lists: "_Lists") -> None:
        """Feed the block's correlations to ``lists``, a few hundred rows at a time (the whole
        block's float64 temporaries would be several times the accumulator): each row's
        partners, and with ``upper``, each later column's partners among the rows."""
        self._flush()
        self._buf = torch.zeros(0, device=self.device)  # no more batches: free the float32 sums
        step = max(1, self.FINISH_ENTRIES // max(1, self.n - self.col0))
        first = self.rows.start
        for s, e in self.subs:  # rows s..e-1 hold columns col0+s.. (upper: col0 = first)
            for a in range(s, e, step):
                b = min(a + step, e)
                corr = self.correlations(a, b, s)
                lists.add(first + a, corr, self.col0 + s, has_self=True)
                if self.upper and first + e < self.n:  # columns first+e.. own these entries too
                    lists.add(first + e, corr[:, e - s:].T.contiguous(), first + a)
                del corr

    def finish(self, k: int, bins: int = 100) -> tuple[TopK, TopK, Summary]:
        """Top-k, bottom-k (self excluded) and summary for this block's rows (all columns)."""
        if self.upper:
            raise ValueError("an upper-triangle block lacks its rows' earlier partners: use correlate()")
        lists = _Lists(self.rows.start, len(self.rows), k, bins, self.n, self.device)
        self.fold(lists)
        return lists.result()


class _Lists:
    """Running top-(k+1), bottom-(k+1) (the owner itself is dropped at the end) and summary
    of the owners first..first+n-1, fed blocks of correlations in any order."""

    def __init__(self, first: int, n: int, k: int, bins: int, n_partners: int, device: torch.device) -> None:
        self.first, self.k = first, k
        self.kk = min(k + 1, n_partners)
        self.best = {largest: (torch.full((n, self.kk), -math.inf if largest else math.inf, device=device),
                               torch.full((n, self.kk), -1, dtype=torch.long, device=device))
                     for largest in (True, False)}
        self.summary = Summary.empty(n, -1.0, 1.0, bins)

    def add(self, owner0: int, corr: Tensor, partner0: int, has_self: bool = False) -> None:
        """corr [owners, partners]: owners owner0.., partners partner0.. (global ids);
        ``has_self``: the owners' own columns are among the partners (left out of the summary)."""
        lo = owner0 - self.first
        own = slice(lo, lo + corr.shape[0])
        if has_self:
            owners = torch.arange(owner0, owner0 + corr.shape[0], device=corr.device)
            if corr.shape[1] > 1:
                self.summary.add(own, _without_diagonal(corr, owners - partner0))
        else:
            self.summary.add(own, corr)
        for largest, (held_v, held_i) in self.best.items():
            v, i = torch.topk(corr, min(self.kk, corr.shape[1]), dim=1, largest=largest)
            v = torch.cat([held_v[own], v], 1)
            i = torch.cat([held_i[own], i + partner0], 1)
            v, j = torch.topk(v, self.kk, dim=1, largest=largest)
            held_v[own], held_i[own] = v, torch.gather(i, 1, j)

    def result(self) -> tuple[TopK, TopK, Summary]:
        owners = torch.arange(self.first, self.first + self.summary.n.shape[0])
        out = []
        for largest, (v, i) in self.best.items():
            v, i = _drop_self(v.cpu(), i.cpu(), owners, self.k, largest)
            out.append(TopK(v, i.masked_fill(~torch.isfinite(v), -1)))
        return out[0], out[1], self.summary


def _without_diagonal(corr: Tensor, owners: Tensor) -> Tensor:
    """[R, n] -> [R, n-1]: each row without its owner's own column (``owners``: column index)."""
    R, n = corr.shape
    keep = torch.ones(R, n, dtype=torch.bool, device=corr.device)
    keep[torch.arange(R, device=corr.device), owners] = False
    return corr[keep].view(R, n - 1)


def correlate(batches: Batches, n_neurons: int, k: int = 10, *, memory_mb: float = 2048,
              bins: int = 100, device: str | torch.device = "cpu", progress: bool = True,
              total: int | None = None, cache_dir: str | Path | None = None,
              cache_dtype: torch.dtype = torch.float32) -> CorrelationResult:
    """Pearson correlation of every neuron with every other over the batches.

    ``batches`` yields [tokens, n_neurons] activations. When the budget asks for more than
    one pass, either ``batches`` is a callable returning a fresh iterable (each pass re-runs
    it: the forward pass repeats), or ``cache_dir`` is given: the first pass stores every
    batch there (``cache_dtype``; float16 halves the disk for ~1e-3 error in r) and the
    other passes read it back instead of recomputing.
    """
    N = n_neurons
    blocks = row_blocks(N, memory_mb)
    passes = len(blocks)
    if passes > 1 and cache_dir is not None:
        batches = _DiskReplay(batches, Path(cache_dir), cache_dtype)
    elif passes > 1 and not callable(batches):
        raise ValueError(f"{N} neurons in {memory_mb} MB need {passes} passes over the corpus: "
                         "pass a callable that replays the batches, a cache_dir, or raise memory_mb")
    lists = _Lists(0, N, k, bins, N, torch.device(device))
    n_tokens = 0
    for p, rows in enumerate(blocks):
        sc = StreamingCorrelation(N, rows, upper=True, device=device)
        it = batches() if callable(batches) else batches
        desc = f"correlations pass {p + 1}/{passes}" if passes > 1 else "correlations"
        for x in tqdm(it, desc=desc, disable=not progress, total=total, unit="batch"):
            sc.add(x)
        sc.fold(lists)
        n_tokens = sc.count
        del sc
    *found, summary = lists.result()
    top, bottom = TopK.empty(N, k, True), TopK.empty(N, k, False)
    for t, f in zip((top, bottom), found):  # k columns even with fewer partners
        kk = f.values.shape[1]
        t.values[:, :kk], t.indices[:, :kk] = f.values, f.indices
    return CorrelationResult(top, bottom, summary, n_tokens)


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
