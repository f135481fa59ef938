"""Streaming Pearson correlation between all neuron pairs, within a memory budget.

Universal Neurons keeps a float64 ``[L, D, L, D]`` cross-sum: 11 GB for GPT-2 small, 17 GB
(+ a float32 batch product) for SmolLM2-135M's 46,080 neurons. We never hold it. The
neurons are split into row blocks; a block of R rows accumulates ``Σ x_r x_c`` against all
N columns (float32 per batch, summed into float64), plus ``Σx``/``Σx²``. When the block is
done its correlations are turned into top-k, bottom-k and a summary, and the block freed.

Trade-off: memory ``12 · R · N`` bytes for ``ceil(N / R)`` passes over the corpus. With
the whole matrix inside the budget (R = N) it is one pass and can run inside the harvest
(feed ``StreamingCorrelation.add``); otherwise either pass a callable that replays the
batches (each pass re-runs the forward pass) or a ``cache_dir``: the first pass stores the
activations there (N × 4 bytes per token in float32, N × 2 in float16) and the other passes
read them back. The multiply-adds are the same ``T · N²`` either way. SmolLM2-135M with the
default 2 GiB budget: R = 3,883 rows, 12 passes; 10k tokens cache 1.8 GB in float32.

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
    """Row-block size whose accumulators (float64 + float32 batch product) fit memory_mb."""
    return max(1, min(n, int(memory_mb * 2**20 / (12 * n))))


class StreamingCorrelation:
    """Accumulates correlations of neurons ``rows`` (a range of global ids) with all ``n``.

        sc = StreamingCorrelation(n=1000, rows=range(0, 1000))
        for x in batches:          # x: [tokens, n] activations of valid positions
            sc.add(x)
        top, bottom, summary = sc.finish(k=10)
    """

    FLUSH = 16384  # tokens summed in float32 before joining the float64 accumulator

    def __init__(self, n: int, rows: range | None = None, *, device: str | torch.device = "cpu") -> None:
        self.n = n
        self.rows = rows if rows is not None else range(n)
        self.device = torch.device(device)
        R = len(self.rows)
        self.count = 0
        self.shift: Tensor | None = None
        self.sum = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.sumsq = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.cross = torch.zeros(R, n, dtype=torch.float64, device=self.device)
        self._buf = torch.zeros(R, n, dtype=torch.float32, device=self.device)
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
        r = x[:, self.rows.start:self.rows.stop]
        # batch products add up in a float32 buffer that is flushed into the float64 sums
        # every FLUSH tokens: a float64 add per batch would cost as much as the product
        torch.addmm(self._buf, r.T, x, out=self._buf)
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

    FINISH_ENTRIES = 1 << 22  # entries per row chunk of finish(): its float64 temporaries stay ~100 MB

    def correlations(self, a: int = 0, b: int | None = None) -> Tensor:
        """The Pearson block of this block's rows a..b-1 (local indices; all by default)
        against all n neurons, float32 (0 where a neuron is constant)."""
        self._flush()
        b = len(self.rows) if b is None else b
        n = max(self.count, 1)
        mean = self.sum / n
        std = (self.sumsq / n - mean.square()).clamp(min=0).sqrt()
        rs = slice(self.rows.start + a, self.rows.start + b)
        cov = self.cross[a:b] / n
        cov -= mean[rs, None] * mean[None, :]
        denom = std[rs, None] * std[None, :]
        cov /= denom.clamp(min=1e-300)
        return cov.masked_fill_(denom == 0, 0).clamp_(-1, 1).float()

    def finish(self, k: int, bins: int = 100) -> tuple[TopK, TopK, Summary]:
        """Top-k, bottom-k (self excluded) and summary for this block's rows, computed a few
        hundred rows at a time: the whole block's float64 temporaries would be several
        times the accumulator (9 GB on SmolLM2 with a 2 GiB budget)."""
        self._flush()
        self._buf = torch.zeros(0, device=self.device)  # no more batches: free the float32 sums
        R = len(self.rows)
        summary = Summary.empty(R, -1.0, 1.0, bins)
        kk = min(k + 1, self.n)
        vals: list[list[Tensor]] = [[], []]
        idxs: list[list[Tensor]] = [[], []]
        step = max(1, self.FINISH_ENTRIES // max(1, self.n))
        for a in range(0, R, step):
            b = min(a + step, R)
            corr = self.correlations(a, b)
            owners = torch.arange(self.rows.start + a, self.rows.start + b, device=corr.device)
            if self.n > 1:  # the summary covers the other neurons only
                summary.add(slice(a, b), _without_diagonal(corr, owners))
            for j, largest in enumerate((True, False)):
                v, i = torch.topk(corr, kk, dim=1, largest=largest)
                v, i = _drop_self(v, i, owners, k, largest)
                vals[j].append(v)
                idxs[j].append(i.masked_fill(~torch.isfinite(v), -1))
            del corr
        out = [TopK(torch.cat(vals[j]).cpu(), torch.cat(idxs[j]).cpu()) for j in range(2)]
        return out[0], out[1], summary


def _without_diagonal(corr: Tensor, owners: Tensor) -> Tensor:
    """[R, n] -> [R, n-1]: each row without its owner's own column."""
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
    R = rows_for_budget(N, memory_mb)
    passes = math.ceil(N / R)
    if passes > 1 and cache_dir is not None:
        batches = _DiskReplay(batches, Path(cache_dir), cache_dtype)
    elif passes > 1 and not callable(batches):
        raise ValueError(f"{N} neurons in {memory_mb} MB need {passes} passes over the corpus: "
                         "pass a callable that replays the batches, a cache_dir, or raise memory_mb")
    top, bottom = TopK.empty(N, k, True), TopK.empty(N, k, False)
    summary = Summary.empty(N, -1.0, 1.0, bins)
    n_tokens = 0
    for p in range(passes):
        rows = range(p * R, min((p + 1) * R, N))
        sc = StreamingCorrelation(N, rows, device=device)
        it = batches() if callable(batches) else batches
        desc = f"correlations pass {p + 1}/{passes}" if passes > 1 else "correlations"
        for x in tqdm(it, desc=desc, disable=not progress, total=total, unit="batch"):
            sc.add(x)
        t, b, s = sc.finish(k, bins)
        sl = slice(rows.start, rows.stop)
        kk = t.values.shape[1]
        top.values[sl, :kk], top.indices[sl, :kk] = t.values, t.indices
        bottom.values[sl, :kk], bottom.indices[sl, :kk] = b.values, b.indices
        summary.n[sl], summary.s1[sl], summary.s2[sl], summary.hist[sl] = s.n, s.s1, s.s2, s.hist
        n_tokens = sc.count
        del sc
    for t in (top, bottom):
        t.indices[~torch.isfinite(t.values)] = -1
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
