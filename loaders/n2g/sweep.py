"""N2G for every neuron at once, a block of contexts at a time (:func:`run_sweep`).

Neurons of every layer peak on the same contexts: over the demo's corpus (256 contexts of 64
tokens) the 46,080 neurons of SmolLM2 have 9.3 (context, pivot) pairs each in their training
examples, 16,359 distinct, so each is fitted by 26 neurons on average; a group of 64 neurons
in interest order (what :func:`loaders.n2g.batched.run_model` gets from ``build_n2g``) shares
3% of its pairs, and even 4,096 neurons sorted by their pairs share a third of what the whole
model does. So the sweep turns the work around: each example is fitted on its own (the stages
only pool requests), so it fits, block after block of contexts, every neuron's training
examples in those contexts in one lockstep, where one forward pass serves every neuron asking
for the same pruned prompt, masked row or substitution variant, and keeps each example's trie
lines. A neuron's trie is built from its lines once its last block is done, inserted in the
order of one fit: the same trie as :func:`loaders.n2g.run_neuron` (tests).

Resumable: with ``checkpoint`` (a folder), each block's lines are kept there as it ends and
a later run with the same plan starts after the last block kept; the folder is emptied when the
sweep ends. Several processes can sweep together through one folder (``worker``).

    for block, blocks, done in run_sweep(model_fn, examples, pad_token=mask, substitutes=subs):
        store(done)  # {(layer, index): NeuronResult | ValueError} of the neurons finished here
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Hashable, Iterator, Mapping, Sequence

import numpy as np

from .batched import LayerFn, LayerStats, run_fits
from .fit import Example, FitTrace, N2GConfig, NeuronResult, SubstituteFn, line_steps, scored, split_examples, trie_of

Key = tuple[int, int]


@dataclass
class Plan:
    """Which training examples of which neurons each block fits. ``parts[b][key]``: the key's
    (place among its training examples, example) in block b; ``last[key]``: its last block."""

    keys: list[Key]
    splits: dict[Key, tuple[list[int], list[int]]]
    base_max: dict[Key, float]
    parts: list[dict[Key, list[tuple[int, Example]]]]
    last: dict[Key, int] = field(default_factory=dict)
    digest: str = ""


def plan_sweep(examples: Mapping[Key, Sequence[Example]], config: N2GConfig, contexts_per_block: int = 8,
               contexts: Collection[tuple[int, ...]] | None = None) -> Plan:
    """Blocks of ``contexts_per_block`` distinct contexts (token sequences) and what each block
    fits, the contexts in an order that finishes neurons soon (:func:`finishing_order`: a neuron
    is stored when its last context is done). A neuron whose examples never fire is fitted
    nowhere (it is told so at the end, as :func:`loaders.n2g.run_neuron` would). ``contexts``:
    fit only the examples in these (a benchmark's sample; the tries are then partial).

        >>> ex = lambda t, a: Example(t, a)
        >>> plan = plan_sweep({(0, 1): [ex([1, 2], [0, 1]), ex([3, 4], [1, 0])],
        ...                    (0, 2): [ex([3, 4], [0, 2]), ex([1, 2], [2, 0])]}, N2GConfig(train_fraction=1.0), 1)
        >>> [sorted((k, [i for i, _ in v]) for k, v in part.items()) for part in plan.parts]
        [[((0, 1), [0]), ((0, 2), [1])], [((0, 1), [1]), ((0, 2), [0])]]
    """
    ids: dict[tuple[int, ...], int] = {}  # context -> its id, in order of first use
    items: dict[Key, list[tuple[int, int, Example]]] = {}  # key -> (context id, place, example)
    plan = Plan(sorted(examples), {}, {}, [])
    # "finishing order": the blocks' contexts are ordered (a kept block of another order is not this one's)
    h = hashlib.sha256(repr((config, contexts_per_block, sorted(contexts or ()), "finishing order")).encode())
    for key in plan.keys:
        exs = examples[key]
        if not exs:
            continue
        plan.splits[key] = split_examples(exs, config.train_fraction, config.seed)
        plan.base_max[key] = max(max(e.activations) for e in exs)
        h.update(repr((key, len(exs))).encode())
        for e in exs:  # as bytes: repr of the demo's 29M activations took 35 s of the sweep's start
            h.update(len(e.tokens).to_bytes(4, "little") + np.asarray(e.tokens, dtype=np.int64).tobytes()
                     + np.asarray(e.activations, dtype=np.float64).tobytes() + repr(e.pivot).encode())
        if plan.base_max[key] <= 0:
            continue
        for place, i in enumerate(plan.splits[key][0]):
            ctx = tuple(exs[i].tokens)
            if contexts is None or ctx in contexts:
                items.setdefault(key, []).append((ids.setdefault(ctx, len(ids)), place, exs[i]))
    order = finishing_order([sorted({c for c, _, _ in v}) for v in items.values()], len(ids))
    per = max(1, contexts_per_block)
    block = {c: k // per for k, c in enumerate(order)}
    plan.parts = [{} for _ in range(-(-len(order) // per))]
    for key, its in items.items():
        for c, place, ex in its:
            plan.parts[block[c]].setdefault(key, []).append((place, ex))
        plan.last[key] = max(block[c] for c, _, _ in its)
    plan.digest = h.hexdigest()[:16]
    return plan


def finishing_order(sets: Sequence[Sequence[int]], n: int) -> list[int]:
    """The contexts 0..n-1 in an order that finishes the neurons (``sets``: each one's contexts)
    soonest for the work done: greedily the context whose neurons gain most per neuron fitted
    there (its cost), a neuron gaining 1 from its last context, 1/4 from the one before, 1/16 ...
    (ties: the lower id). On the demo's corpus (256 contexts, 46,080 neurons with 5 training
    contexts each), once a quarter of the work is done 1,990 neurons are finished instead of 52 in
    the contexts' order of first use, at half 7,804 instead of 1,436, at three quarters 17,482
    instead of 10,358.

        >>> finishing_order([[0, 2], [1], [1, 2]], 3)
        [1, 2, 0]
    """
    of_ctx: list[list[int]] = [[] for _ in range(n)]
    for a, cs in enumerate(sets):
        for c in cs:
            of_ctx[c].append(a)
    cost = np.array([max(1, len(a)) for a in of_ctx], dtype=float)
    left = [len(cs) for cs in sets]
    gain = lambda r: 0.25 ** (r - 1) if r > 0 else 0.0  # noqa: E731
    score = np.zeros(n)
    for a, cs in enumerate(sets):
        for c in cs:
            score[c] += gain(left[a])
    order: list[int] = []
    for _ in range(n):
        c = int(np.argmax(score / cost))
        order.append(c)
        score[c] = -np.inf
        for a in of_ctx[c]:
            d = gain(left[a] - 1) - gain(left[a])
            left[a] -= 1
            for c2 in sets[a]:
                score[c2] += d
    return order


def run_sweep(model_fn: LayerFn, examples: Mapping[Key, Sequence[Example]], *, pad_token: int,
              substitutes: SubstituteFn | None = None, normalise: Callable[[int], Hashable] | None = None,
              sentence_end: Callable[[int], bool] | None = None, config: N2GConfig = N2GConfig(),
              contexts_per_block: int = 8, batch_tokens: int = 4096, stats: LayerStats | None = None,
              checkpoint: Path | str | None = None, contexts: Collection[tuple[int, ...]] | None = None,
              worker: tuple[int, int] | None = None, poll_s: float = 1.0
              ) -> Iterator[tuple[int, int, dict[Key, NeuronResult | ValueError]]]:
    """Fit every neuron of ``examples`` ((layer, index) -> its top examples) block by block of
    contexts; yields (block, blocks, {key: result}) after each block with the neurons it
    finished (a :class:`NeuronResult`, or the ValueError of a neuron with nothing to fit), as
    :func:`loaders.n2g.batched.run_model` gives them. ``model_fn`` as ``run_model``'s.

    ``worker`` (i, n): one of n processes sweeping the same neurons together through the same
    ``checkpoint`` folder (one machine): each claims the next block nobody has (a lock file with its
    pid; a dead process's claim is taken over), reads the others' blocks as they are kept, and
    yields only the neurons of layers with layer % n == i. Every worker shares every pass with all
    the neurons (split by layers instead, each of two processes fitted an example in 104.7 CPU ms
    instead of 67.7: bench_n2g_sweep)."""
    if getattr(model_fn, "packed_layers", None) is None:
        raise ValueError("run_sweep needs a model function with packed_layers(rows, want)")
    if worker is not None and checkpoint is None:
        raise ValueError("sweep workers share their blocks through a checkpoint folder")
    stats = stats if stats is not None else LayerStats()
    plan = plan_sweep(examples, config, contexts_per_block, contexts)
    folder = Path(checkpoint) if checkpoint is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        mark = folder / "plan.json"
        if not mark.is_file() or json.loads(mark.read_text()).get("digest") != plan.digest:
            for old in [*folder.glob("block-*"), *folder.glob("done-*")]:  # another plan's blocks
                old.unlink(missing_ok=True)
            mark.write_text(json.dumps({"digest": plan.digest, "blocks": len(plan.parts), "keys": plan.keys}))
    # Each unfinished neuron's lines, pickled per block, unpickled once when its trie is built: as
    # Python tuples one of the demo's two workers held 745 MB for its first 49 blocks, pickled 148
    # (bench_sweep_memory; ~2 CPU s in all).
    lines: dict[Key, list[bytes]] = {}
    traces: dict[Key, FitTrace] = {}
    failed: dict[Key, ValueError] = {}
    # Never fitted: no examples, or none that fires.
    for key in plan.keys:
        if key not in plan.splits:
            failed[key] = ValueError("N2G needs at least one example")
        elif plan.base_max[key] <= 0:
            failed[key] = ValueError("N2G needs a positive max activation to normalise by")
    stats.neurons += len(plan.keys)
    if failed or not plan.parts:
        yield -1, len(plan.parts), {k: v for k, v in failed.items() if worker is None or k[0] % worker[1] == worker[0]}

    def fit(b: int) -> dict[Key, tuple[Any, FitTrace]]:
        fits = {}
        for key, items in plan.parts[b].items():
            trace = FitTrace()
            fits[key] = (key, line_steps([e for _, e in items], ids=[p for p, _ in items], pad_token=pad_token,
                                         base_max=plan.base_max[key], substitute=substitutes is not None,
                                         normalise=normalise, config=config, sentence_end=sentence_end,
                                         trace=trace), trace)
        out = run_fits(model_fn, {k: (c, g) for k, (c, g, _t) in fits.items()}, substitutes=substitutes,
                       batch_size=config.batch_size, batch_tokens=batch_tokens, stats=stats)
        got = {k: (out[k], fits[k][2]) for k in fits}
        if folder is not None:
            kept = _block_file(folder, b)
            tmp = kept.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(got))
            tmp.replace(kept)  # a block is kept whole or not at all
        return got

    mine = (lambda key: key[0] % worker[1] == worker[0]) if worker is not None else (lambda key: True)
    for b, part in enumerate(plan.parts):
        if folder is None:
            got = fit(b)
        else:
            while not _block_file(folder, b).is_file():
                # Another worker has this block: fit the next one nobody has meanwhile.
                ahead = next((c for c in range(b, len(plan.parts)) if not _block_file(folder, c).is_file()
                              and _claim(folder, c)), None)
                if ahead is None:
                    time.sleep(poll_s)
                    continue
                try:
                    fit(ahead)
                finally:
                    _lock_file(folder, ahead).unlink(missing_ok=True)
            got = pickle.loads(_block_file(folder, b).read_bytes())
        for key, (res, trace) in got.items():
            if not mine(key):  # another worker stores it
                continue
            if isinstance(res, Exception):
                failed[key] = res
                continue
            lines.setdefault(key, []).append(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
            traces.setdefault(key, FitTrace()).add(trace)
        done: dict[Key, NeuronResult | ValueError] = {}
        for key in part:
            if plan.last[key] != b or not mine(key):
                continue
            if key in failed:
                done[key] = failed.pop(key)
                stats.failed[key] = str(done[key])
                continue
            train_idx, test_idx = plan.splits[key]
            model = trie_of([ln for blob in lines.pop(key, []) for ln in pickle.loads(blob)], normalise, config)
            done[key] = scored(model, examples[key], train_idx, test_idx, plan.base_max[key],
                               traces.pop(key, FitTrace()), config)
        yield b, len(plan.parts), done
    if folder is not None:  # the last worker to finish removes the kept blocks
        (folder / f"done-{worker[0] if worker else 0}").touch()
        if all((folder / f"done-{i}").is_file() for i in range(worker[1] if worker else 1)):
            clear_sweep(folder)
    # Outside a sample of contexts (``contexts``): nothing fitted, an empty trie scored as such.
    rest = [k for k in plan.keys if k in plan.splits and plan.base_max[k] > 0 and k not in plan.last and mine(k)]
    if rest:
        yield len(plan.parts), len(plan.parts), {
            k: scored(trie_of([], normalise, config), examples[k], *plan.splits[k], plan.base_max[k], FitTrace(), config)
            for k in rest}


def _block_file(folder: Path, b: int) -> Path:
    return folder / f"block-{b:05d}.pkl"


def _lock_file(folder: Path, b: int) -> Path:
    return folder / f"block-{b:05d}.lock"


def _claim(folder: Path, b: int) -> bool:
    """Whether this process now owns block b (a lock file holding its pid). A claim whose process
    is gone (killed mid-block) is taken over."""
    lock = _lock_file(folder, b)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
                os.kill(pid, 0)
                return False  # alive (or not ours to signal): its block
            except ProcessLookupError:
                lock.unlink(missing_ok=True)  # dead: try again
            except (ValueError, OSError):
                return False  # being written, or unreadable: leave it
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        if _block_file(folder, b).is_file():  # kept meanwhile by its owner
            lock.unlink(missing_ok=True)
            return False
        return True
    return False


def sweep_keys(checkpoint: Path | str) -> list[Key] | None:
    """The neurons of the sweep kept in ``checkpoint``, if one was started there."""
    mark = Path(checkpoint) / "plan.json"
    if not mark.is_file():
        return None
    return [(int(l), int(i)) for l, i in json.loads(mark.read_text()).get("keys", [])]


def clear_sweep(checkpoint: Path | str) -> None:
    """Remove a finished sweep's kept blocks and plan."""
    folder = Path(checkpoint)
    for f in [*folder.glob("block-*.pkl"), *folder.glob("block-*.tmp"), *folder.glob("block-*.lock"),
              *folder.glob("done-*"), folder / "plan.json"]:
        f.unlink(missing_ok=True)


def sweep_all(model_fn: LayerFn, examples: Mapping[Key, Sequence[Example]], **kw: Any) -> dict[Key, NeuronResult | ValueError]:
    """:func:`run_sweep` to its end: every neuron's result (the shape of ``run_model``'s)."""
    out: dict[Key, NeuronResult | ValueError] = {}
    for _b, _n, done in run_sweep(model_fn, examples, **kw):
        out.update(done)
    return out
