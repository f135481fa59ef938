"""What a sweep worker holds, against the way it held it before, in the same run, each form in a
forked process measured by its resident memory's growth:

* every neuron's top examples (the sweep reads them all): the token lists of a context shared
  by the neurons that peak on it (:class:`loaders.n2g.Example` keeps a list of ints as given)
  vs a copy in every example (the baseline) -- read from the demo graph (``--examples N``
  neurons, 0: none);
* its unfinished neurons' lines: pickled per block (what ``loaders.n2g.sweep.run_sweep`` keeps)
  vs Python tuples (the baseline), on a real sweep's kept blocks: the demo's while its
  background sweep runs, or a copy of them (they go when the sweep ends); with the CPU the
  pickled form costs (dumps as each block is read, loads when the tries are built).

    python bench/bench_sweep_memory.py                     # the demo's graph and sweep, data dir
    python bench/bench_sweep_memory.py path/to/blocks --worker 1/2 --blocks 20 --examples 0
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def hold(blocks: list[Path], worker: tuple[int, int], as_bytes: bool, out) -> None:
    """Every block's lines of this worker's neurons, held as run_sweep holds them (none finished)."""
    i, n = worker
    lines: dict = {}
    base, cpu = rss_mb(), 0.0
    for f in blocks:
        got = pickle.loads(f.read_bytes())
        c = time.process_time()
        for key, (res, _trace) in got.items():
            if key[0] % n != i or isinstance(res, Exception):
                continue
            if as_bytes:
                lines.setdefault(key, []).append(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
            else:
                lines.setdefault(key, []).extend(res)
        cpu += time.process_time() - c
        del got
    held = rss_mb() - base
    c = time.process_time()
    count = sum(len([ln for blob in v for ln in pickle.loads(blob)]) if as_bytes else len(v) for v in lines.values())
    out.send((held, cpu, time.process_time() - c, len(lines), count))


def read_examples(n_neurons: int, copy: bool, out) -> None:
    """The top 10 examples of the demo's first ``n_neurons`` neurons, as the sweep reads them."""
    import asyncio

    from loaders.n2g import fit
    from loaders.n2g.storage import _read_examples
    from neurograph.store import open_store

    if copy:  # the baseline: every example's tokens copied, as Example did before
        def copied(self, post=fit.Example.__post_init__):
            self.tokens = list(self.tokens)
            post(self)
        fit.Example.__post_init__ = copied

    async def go():
        store = await open_store()
        try:
            rows = await store.run("MATCH (n:Neuron {model: 'smollm2-135m'}) RETURN n.layer AS l, n.index AS i "
                                   "ORDER BY l, i LIMIT $n", {"n": n_neurons})
            keys = [(r["l"], r["i"]) for r in rows]
            base, exs = rss_mb(), {}
            for s in range(0, len(keys), 1024):
                exs.update(await _read_examples(store, "smollm2-135m", keys[s:s + 1024], None, 10))
            n_ex = sum(len(v) for v in exs.values())
            out.send((rss_mb() - base, len(exs), n_ex, len({id(e.tokens) for v in exs.values() for e in v})))
        finally:
            await store.close()

    asyncio.run(go())


def forked(target, *args):
    recv, send = mp.Pipe(duplex=False)
    p = mp.get_context("fork").Process(target=target, args=(*args, send))
    p.start()
    got = recv.recv()
    p.join()
    return got


def main() -> None:
    from neurograph.config import Settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, nargs="?", help="a sweep's folder of kept blocks (block-*.pkl); "
                    "default: the demo's, <data dir>/n2g-sweep/smollm2-135m-all")
    ap.add_argument("--worker", default="0/2", metavar="I/N", help="the worker whose neurons are held (layer %% N == I)")
    ap.add_argument("--blocks", type=int, default=None, help="only the first this many kept blocks")
    ap.add_argument("--examples", type=int, default=46080, help="neurons whose examples are read (0: none)")
    args = ap.parse_args()
    if args.examples:
        (copy_mb, n, n_ex, _), (shared_mb, _, _, lists) = (forked(read_examples, args.examples, c) for c in (True, False))
        if not n:
            print("no smollm2-135m neurons with examples in the graph (build the demo first): examples not measured")
        else:
            print(f"examples of {n} neurons ({n_ex}): a token list copied in each (baseline) {copy_mb:.0f} MB; shared "
                  f"per context ({lists} lists) {shared_mb:.0f} MB ({copy_mb / max(shared_mb, 1):.1f}x less)", flush=True)
    folder = args.folder or Path(Settings.from_env().data_dir) / "n2g-sweep" / "smollm2-135m-all"
    blocks = sorted(folder.glob("block-*.pkl"))[:args.blocks]
    if not blocks:
        print(f"no kept sweep blocks in {folder}: nothing to measure (run it while a sweep runs, or on a copy "
              "of one's blocks)")
        return
    worker = tuple(int(x) for x in args.worker.split("/"))
    (tup, _, _, neurons, lines), (pick, dumps, loads, _, same) = (forked(hold, blocks, worker, b) for b in (False, True))
    assert same == lines
    print(f"{len(blocks)} kept blocks of {folder.name}, worker {args.worker}: {neurons} neurons, {lines} lines held")
    print(f"as tuples (baseline): {tup:.0f} MB; pickled per block: {pick:.0f} MB ({tup / max(pick, 1):.1f}x less); "
          f"its cost: dumps {dumps:.1f} CPU s, loads {loads:.1f} CPU s")


if __name__ == "__main__":
    main()
