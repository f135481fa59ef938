"""Model worker benchmark: runText through the worker (socket, JSON, top-k over every neuron of
every token) against the bare forward pass of the same text in the same run, then p50/p99 and
throughput under concurrent clients (requests queue: one computes at a time).

    python bench/bench_worker.py [--model smollm2-135m] [--tokens 64] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from loaders.model import load_model, tiny_model  # noqa: E402
from neurograph.config import Settings  # noqa: E402
from neurograph.store import EmbeddedFalkorDB  # noqa: E402
from neurograph.worker import WorkerProcess  # noqa: E402

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. ")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="smollm2-135m, or tiny")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = tiny_model() if a.model == "tiny" else load_model(a.model)
    ids = model.to_tokens(TEXT * 8, prepend_bos=True)[: a.tokens]
    text = model.tokenizer.decode(ids[1:])
    tokens = torch.tensor([model.to_tokens(text, prepend_bos=True)])

    with torch.no_grad():
        model.bridge(tokens)  # warm up
        bare = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            model.bridge(tokens)
            bare.append(time.perf_counter() - t0)
    del model

    data = Path(tempfile.mkdtemp(prefix="ng-bench-worker-"))
    worker = WorkerProcess(Settings(data_dir=data, graph="g"), a.model)
    try:
        await worker.start()
        await worker.client.request("run_text", text=text, top=a.top)  # warm up
        seq = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            await worker.client.request("run_text", text=text, top=a.top)
            seq.append(time.perf_counter() - t0)

        lat: list[float] = []

        async def client(n: int) -> None:
            for _ in range(n):
                t0 = time.perf_counter()
                await worker.client.request("run_text", text=text, top=a.top)
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(client(max(1, a.repeats // 2)) for _ in range(a.clients)))
        wall = time.perf_counter() - t0
    finally:
        await worker.stop()
        EmbeddedFalkorDB(data).stop()
    b, s = statistics.median(bare), statistics.median(seq)
    print(f"{a.model}, {tokens.shape[1]} tokens, top {a.top}")
    print(f"bare forward p50 {b * 1000:.1f} ms; runText through the worker p50 {s * 1000:.1f} ms "
          f"(ratio {s / b:.2f}, goal <= 1.3)")
    print(f"{a.clients} concurrent clients: p50 {pct(lat, .5) * 1000:.0f} ms, p99 {pct(lat, .99) * 1000:.0f} ms, "
          f"{len(lat) / wall:.1f} req/s")


if __name__ == "__main__":
    asyncio.run(main())
