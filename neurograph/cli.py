"""The ``neurograph`` command line.

    neurograph db start                    # the embedded FalkorDB (found again if it runs)
    neurograph cypher "MATCH (n:Neuron) RETURN count(n) AS n"
    neurograph build --model smollm2-135m  # compute the graph from a model
    neurograph import universal-neurons stats.csv --model stanford-gpt2-small-a
    neurograph serve                       # GraphQL + web UI on http://127.0.0.1:8000
    neurograph demo                        # build the demo graph once, then serve it

Heavy compute (torch, transformer-lens) lives in ``loaders`` and is imported only by the
commands that need it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import Settings
from .domain import TOPOLOGY_KINDS
from .errors import NeuroGraphError

DEMO_MODEL = "smollm2-135m"


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _error(e: BaseException) -> None:
    """One error line, never wrapped at the terminal's width (a file path must stay whole when
    the output is a file or a pipe) and never read as rich markup (``file.pt [in_in]``)."""
    from rich.markup import escape

    _console().print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)


def _print_rows(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, default=str, indent=None))
        return
    from rich.console import Console
    from rich.table import Table

    if not rows:
        print("(no rows)")
        return
    table = Table(*rows[0].keys())
    for r in rows:
        table.add_row(*(json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v) for v in r.values()))
    Console().print(table)


def _parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise NeuroGraphError(f"--param {p!r}: use NAME=VALUE (VALUE is JSON, or a plain string)")
        k, v = p.split("=", 1)
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    return params


async def _summarise(settings: Settings, work, *, schema: bool = True) -> int:
    """Open the store, run ``work(store)``, close it, print the summary it returns as JSON."""
    from .store import open_store

    store = await open_store(settings, schema=schema)
    try:
        summary = await work(store)
    finally:
        await store.close()
    _console().print_json(json.dumps(summary, default=str))
    return 0


# --- db -----------------------------------------------------------------------------------
def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if settings.engine != "falkordb" or settings.falkordb_url:
        print("db start/stop manage the embedded FalkorDB only; Neo4j runs under docker compose", file=sys.stderr)
        return 2
    from .store.embedded import EmbeddedFalkorDB

    server = EmbeddedFalkorDB(settings.data_dir, settings.falkordb_port)
    if args.action == "start":
        st = server.start()
        print(f"FalkorDB running (pid {st.pid}) at {st.url}, data in {st.data_dir}")
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    else:
        st = server.status()
        print(f"{'running' if st.running else 'not running'}: pid {st.pid}, {st.url}, data in {st.data_dir}")
        return 0 if st.running else 1
    return 0


# --- cypher -------------------------------------------------------------------------------
async def _cypher(args: argparse.Namespace, settings: Settings) -> int:
    from .store import open_store

    store = await open_store(settings, start=settings.engine == "falkordb", schema=False)
    try:
        params = _parse_params(args.param)
        if args.write:
            rows = await store.run(args.query, params, write=True)
        else:
            rows, truncated = await store.read_only(args.query, params, timeout_ms=args.timeout_ms,
                                                    max_rows=args.max_rows, max_bytes=settings.cypher_max_bytes)
            if truncated:
                _console().print(f"[yellow]showing the first {args.max_rows} rows[/]")
        _print_rows(rows, args.json)
    finally:
        await store.close()
    return 0


# --- build --------------------------------------------------------------------------------
async def _build(args: argparse.Namespace, settings: Settings) -> int:
    from loaders.pipeline import build

    summary = await build(
        settings, model=args.model, dataset=args.dataset, n_tokens=args.tokens, ctx_len=args.ctx_len,
        top_k=args.top_k, edge_k=args.edge_k, analyses=args.analyses, layers=args.layers,
        n2g_neurons=None if args.n2g_neurons == "all" else int(args.n2g_neurons), batch_size=args.batch_size,
        corr_tokens=args.corr_tokens, device=args.device, dtype=args.dtype, random_k=args.random_k,
        quantile_k=args.quantile_k, quantile_bins=args.quantile_bins, seed=args.seed, shard=args.shard)
    summary["neighbour_lists"] = await _lists_of(settings, None)
    _console().print_json(json.dumps(summary, default=str))
    return 0


async def _lists_of(settings: Settings, model: str | None, *, missing: bool = False) -> list[dict]:
    """Make the neighbour lists (neurograph/neighbours.py) of a model, or of every model; with
    ``missing``, of the units that have none."""
    from .neighbours import build_neighbour_lists
    from .store import open_store

    store = await open_store(settings, schema=False)
    try:
        names = [model] if model else [r["m"]["name"] for r in await store.query("models")]
        return [await build_neighbour_lists(store, name, progress=True, missing=missing) for name in names]
    finally:
        await store.close()


async def _lists_if_missing(settings: Settings) -> None:
    """Make the neighbour lists the graph's units lack (all of them, on a graph built before
    lists existed; the few a background step has touched since, on others)."""
    _console().print("neighbour lists: making those missing (`neurograph neighbours` remakes all)…")
    await _lists_of(settings, None, missing=True)


async def _neighbours(args: argparse.Namespace, settings: Settings) -> int:
    _console().print_json(json.dumps(await _lists_of(settings, args.model)))
    return 0


def _shard_layers(args: argparse.Namespace, n_layers: int) -> list[int] | None:
    """--layers, narrowed to the layers of --shard i/n (layer % n == i); None: all layers."""
    if not getattr(args, "shard", None):
        return args.layers
    i, n = args.shard
    layers = [l for l in range(n_layers) if l % n == i]
    return sorted(set(layers) & set(args.layers)) if args.layers else layers


def _shard(v: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in v.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4), not {v!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"shard {v!r}: need 0 <= i < n")
    return i, n


async def _n2g(args: argparse.Namespace, settings: Settings) -> int:
    from loaders.pipeline import n2g

    if args.worker and not args.sweep:
        raise NeuroGraphError("--worker is one of the processes of a --sweep")

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    layers = args.layers
    if args.shard:
        from .store import open_store

        store = await open_store(settings)
        try:
            rows = await store.query("models_by_name", names=[args.model])
        finally:
            await store.close()
        if not rows:
            raise NeuroGraphError(f"model {args.model!r} is not in the graph: run `neurograph build` first")
        layers = _shard_layers(args, int(rows[0]["m"]["n_layers"]))
    summary = await n2g(settings, model=args.model, n2g_neurons=None if args.neurons == "all" else int(args.neurons),
                        layers=layers, device=args.device, dtype=args.dtype, group=args.group, top_k=args.top_k,
                        sweep=args.sweep, contexts_per_block=args.contexts_per_block, worker=args.worker,
                        force=args.force, progress=not args.quiet, fast_dtype=args.fast_dtype)
    summary["failed"] = len(summary.get("failed") or [])
    _console().print_json(json.dumps(summary, default=str))
    return 0


# --- import / export ----------------------------------------------------------------------
async def _import(args: argparse.Namespace, settings: Settings) -> int:
    from loaders.importing import remember_imports
    from loaders.registry import import_source

    extra = _parse_params(args.option)
    if args.model_info:
        extra["model_info"] = args.model_info
    if args.vocab:
        extra["vocab"] = Path(args.vocab)
    if args.k is not None:
        extra["k"] = args.k
    if args.neurons:
        extra["neurons"] = [tuple(int(x) for x in ln.split("/")) for ln in args.neurons.split(",") if ln]
    path = args.path if args.path.startswith(("http://", "https://")) else Path(args.path)

    summary: dict[str, Any] = {}

    async def work(store):
        # a digest of what each import wrote, beside the graph: a re-run can say "unchanged"
        with remember_imports(settings.data_dir / "imports" / f"{settings.graph}.json"):
            summary.update(await import_source(store, args.source, path, model=args.model, **extra))
        await store.compact()
        return summary

    code = await _summarise(settings, work)
    from rich.markup import escape

    for w in summary.get("warnings") or []:
        _console().print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    if summary.get("status") == "unchanged":
        _console().print("unchanged: the import wrote the same rows as the last import of this source "
                         "into this model, and nothing else wrote in between; the counts above are rows "
                         "written, not changes", soft_wrap=True)
    return code


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    from .export import export_graph

    formats = tuple(args.format) if args.format else ("neo4j-csv", "graphml", "jsonl")
    return await _summarise(settings, lambda store: export_graph(store, Path(args.dir), formats=formats,
                                                                 model=args.model), schema=False)


async def _topology(args: argparse.Namespace, settings: Settings) -> int:
    from .topology import compute_topology

    from .domain import CIRCUIT_TOPOLOGY_KINDS, CIRCUIT_TOPOLOGY_PREFIX

    kinds, prefix = (CIRCUIT_TOPOLOGY_KINDS, CIRCUIT_TOPOLOGY_PREFIX) if args.circuits else (args.kinds, "")
    return await _summarise(settings, lambda store: compute_topology(
        store, args.model, kinds=kinds, min_weight=args.min_weight, per_node=args.per_node or None,
        betweenness_k=args.betweenness_k or None,
        seed=args.seed, prefix=prefix, progress=True), schema=False)


async def _pages(args: argparse.Namespace, settings: Settings) -> int:
    from .api.app import render_pages

    async def work(store):
        return (await render_pages(store, settings, args.model, layers=args.layers, concurrency=args.concurrency,
                                   progress=True)).as_dict()

    return await _summarise(settings, work, schema=False)


# --- serve / demo -------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .api.app import create_app
    from .api.processes import Peer, listen, log_like_uvicorn

    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        _console().print("[yellow]serving beyond loopback without NEUROGRAPH_API_KEY: "
                         "writing endpoints stay disabled[/]")
    log_like_uvicorn(args.log_level)
    worker = None
    if args.model:
        from .worker import WorkerProcess

        worker = WorkerProcess(settings, args.model, device=args.device)
        _console().print(f"model worker for {args.model} starting in the background (runText, steer, …)")
    processes = args.processes or min(os.cpu_count() or 1, 4)
    sock = listen(args.host, args.port)  # before anything starts: a taken port fails at once
    _console().print(f"NeuroGraph on http://{args.host}:{args.port}/  (GraphQL: /graphql, REST: /api)")
    peers = [Peer(i, sock, settings, worker=worker, server_options={"log_level": args.log_level})
             for i in range(1, processes)]
    if peers:
        _console().print(f"{processes} API processes on one socket")
    jobs = getattr(args, "n2g_jobs", 0) or min(os.cpu_count() or 1, 4)
    background = _start_n2g_background(settings, DEMO_MODEL, jobs) if getattr(args, "n2g", False) else []
    try:
        app = create_app(settings, render_pages=args.pages, worker=worker, peers=peers)
        uvicorn.Server(uvicorn.Config(app, log_level=args.log_level)).run(sockets=[sock])
    finally:
        for proc in background:
            if proc.poll() is None:
                proc.terminate()  # its progress is stored group by group: the next start resumes
        for proc in background:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


# The demo's corpus circuits, run in the background before N2G (bounded: ~3 s a prompt on one
# loaded core, bench_attribution --corpus-len 16 --max-neurons 64 --threads 1; skipped once stored).
DEMO_CIRCUITS = ["circuits", "--prompts", "256", "--prompt-len", "16", "--max-neurons", "64", "--threads", "1",
                 "--quiet"]


# Neurons per layer fitted before the sweep, the most interesting first (~10 min of 2 idle cores; 20-35
# min at the demo's start, beside the page renderer and the corpus circuits): token search then finds
# common tokens in most layers while the sweep, which stores most of its neurons near its end, runs
# (960 neurons covered: " the" in 26 of 30 layers, " in" and "." in 27). The sweep alone finishes them
# last (237 of 960 at half of its work on the demo's examples, even weighted 256x in its finishing
# order: their contexts span the corpus); the step costs ~8 min of 2 cores net (0.8 neurons per CPU
# second in groups, 3.9 in the sweep).
DEMO_FIRST = 32


def _start_n2g_background(settings: Settings, model: str, jobs: int) -> "list[subprocess.Popen]":
    """Separate, lower-priority processes (the API process never imports torch): the first runs the
    corpus circuits (``neurograph circuits``, bounded), then each (one thread each, so ``jobs``
    cores) fits the most interesting neurons of each layer of its shard first (``--neurons``
    DEMO_FIRST ``--shard i/jobs``, stored group by group), then all of them sweep every other
    neuron together (``--sweep --worker i/jobs``: neurons that peak on the same contexts share the
    forward passes; stored as their last block of contexts ends). They resume at the next start.
    Their log is ``<data dir>/n2g-background.log``."""
    log_path = Path(settings.data_dir) / "n2g-background.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # bfloat16 where that is fast, masking importance rechecked in float32 where a decision could flip:
    # every stage in bfloat16 cost held-out F1 -.009 [-.021, -.001] on bench_n2g's sample, this split
    # none (loaders.pipeline.IMPORTANCE_RECHECK).
    cmd = [sys.executable, "-m", "neurograph", "n2g", "--model", model, "--device", "auto",
           "--dtype", "float32", "--fast-dtype", "auto", "--threads", "1", "--quiet"]
    procs = []
    out = open(log_path, "ab")
    try:
        for i in range(jobs):
            shard = ["--shard", f"{i}/{jobs}"] if jobs > 1 else []
            worker = ["--worker", f"{i}/{jobs}"] if jobs > 1 else []
            first, rest = cmd + ["--neurons", str(DEMO_FIRST)] + shard, cmd + ["--neurons", "all", "--sweep"] + worker
            procs.append(subprocess.Popen(_background_steps(model, first, rest, circuits=i == 0), stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          preexec_fn=(lambda: os.nice(10)) if hasattr(os, "nice") else None))
    finally:
        out.close()
    _console().print(f"corpus circuits, then N2G for every neuron ({jobs} background process(es), pids "
                     f"{', '.join(str(p.pid) for p in procs)}; log {log_path})")
    return procs


def _background_steps(model: str, *then: list[str], circuits: bool = True) -> list[str]:
    """The command of one process (neurograph.background) that runs the demo's corpus circuits
    (unless ``circuits`` is false), then the commands ``then``, one after another."""
    first = [[sys.executable, "-m", "neurograph", DEMO_CIRCUITS[0], model, *DEMO_CIRCUITS[1:]]] if circuits else []
    return [sys.executable, "-m", "neurograph.background", json.dumps([*first, *then])]


async def _demo_needs_build(settings: Settings) -> bool:
    from .store import open_store

    store = await open_store(settings)
    try:
        rows = await store.run("MATCH (m:Model {key: $m}) RETURN m.build_complete AS done", {"m": DEMO_MODEL})
        return not (rows and rows[0].get("done"))
    finally:
        await store.close()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    if args.rebuild or asyncio.run(_demo_needs_build(settings)):
        _console().print(f"[bold]Building the demo graph from {DEMO_MODEL} (offline)…[/]")
        # Lighter than `build`'s defaults so a 2-core laptop has a graph to browse in minutes;
        # `neurograph build` with its defaults gives the full one.
        build_args = build_parser().parse_args([
            "build", "--model", DEMO_MODEL, "--tokens", str(args.tokens), "--top-k", "10", "--edge-k", "5",
            "--random-k", "5", "--quantile-k", "2", "--quantile-bins", "5",
            "--n2g-neurons", "2", "--corr-tokens", "4096"])
        asyncio.run(_build(build_args, settings))
    else:
        _console().print("demo graph already built (use --rebuild to build again)")
        asyncio.run(_lists_if_missing(settings))  # a graph built before they existed
    if args.no_serve:
        return 0
    return cmd_serve(args, settings)


# --- parser -------------------------------------------------------------------------------
def _count_or_all(v: str) -> str:
    if v != "all" and not (v.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a count or 'all', not {v!r}")
    return v

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurograph", description="NeuroGraph: a transformer's neurons, heads, tokens and examples as one served graph.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Configuration: NEUROGRAPH_ENGINE (falkordb|neo4j), NEUROGRAPH_DATA_DIR, "
                                       "NEUROGRAPH_GRAPH, NEO4J_URI/USER/PASSWORD/DATABASE, NEUROGRAPH_API_KEY.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="start, stop or check the embedded FalkorDB")
    db.add_argument("action", choices=["start", "stop", "status"])

    cy = sub.add_parser("cypher", help="run a Cypher query (read-only unless --write)")
    cy.add_argument("query")
    cy.add_argument("--param", "-p", action="append", default=[], help="NAME=VALUE (JSON), repeatable")
    cy.add_argument("--write", action="store_true", help="allow writes")
    cy.add_argument("--json", action="store_true", help="print rows as JSON")
    cy.add_argument("--timeout-ms", type=int, default=30000)
    cy.add_argument("--max-rows", type=int, default=1000)

    b = sub.add_parser("build", help="compute the neuron graph from a model and a corpus")
    b.add_argument("--model", default=DEMO_MODEL, help=f"model name (default {DEMO_MODEL}, offline)")
    b.add_argument("--dataset", default="default",
                   help="'default' (KJV + Python stdlib, offline), a .txt/.jsonl path, or a HF dataset name")
    b.add_argument("--tokens", type=int, default=32768, help="corpus tokens to scan")
    b.add_argument("--ctx-len", type=int, default=64, help="tokens per context")
    b.add_argument("--top-k", type=int, default=20, help="max / min examples kept per neuron")
    b.add_argument("--edge-k", type=int, default=10, help="edges kept per neuron and kind")
    b.add_argument("--random-k", type=int, default=10,
                   help="uniformly random contexts kept per neuron beside the top ones (OpenAI's random sample; 0: none)")
    b.add_argument("--quantile-k", type=int, default=2,
                   help="contexts kept per interval of each neuron's activation range (0, max], drawn uniformly "
                        "among the contexts whose max falls in it (Neuronpedia's quantiles; a second corpus pass; "
                        "0: none)")
    b.add_argument("--quantile-bins", type=int, default=10, help="intervals the range (0, max] is cut into")
    b.add_argument("--seed", type=int, default=0, help="another draw of the quantile-sampled examples")
    b.add_argument("--analyses", nargs="+",
                   default=["activations", "composition", "heads", "tokens", "correlation", "n2g", "topology"],
                   help="which analyses to run")
    b.add_argument("--layers", type=int, nargs="*", default=None,
                   help="compute only these layers' neurons (harvest, composition, heads, tokens, correlation)")
    b.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="only layers with layer %% N == I: N machines, one command each, fill one graph; n2g and "
                        "topology run once after every shard is in (see README, 'Building on a cluster')")
    b.add_argument("--n2g-neurons", default="8", type=_count_or_all,
                   help="N2G graphs per layer, most interesting first ('all': every neuron; fitted in batches "
                        "of a layer's neurons)")
    b.add_argument("--device", default="cpu",
                   help="where the model runs: auto (a GPU when present), cpu, cuda, cuda:N, mps; a device asked "
                        "for and missing is an error, never a silent fall back to the CPU (default cpu)")
    b.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "auto"],
                   help="precision of the model's forward passes (harvest, correlation, N2G; default float32); "
                        "weight-based steps use float32 weights on --device. bfloat16 is ~4x faster on CPUs "
                        "with AMX")
    b.add_argument("--batch-size", type=int, default=8)
    b.add_argument("--corr-tokens", type=int, default=None,
                   help="correlate over only this many corpus tokens (all-pairs Pearson is N^2 per token)")

    ng = sub.add_parser("n2g", help="Neuron2Graph pattern graphs only (resumable; the demo runs it in the background)")
    ng.add_argument("--model", default=DEMO_MODEL, help=f"model name (default {DEMO_MODEL}); its harvest must be stored")
    ng.add_argument("--neurons", default="all", type=_count_or_all,
                    help="per layer, most interesting first, or 'all' (default): every neuron, the most "
                         "interesting of every layer first")
    ng.add_argument("--layers", type=int, nargs="*", default=None, help="only these layers")
    ng.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                    help="only layers with layer %% N == I: N machines, one command each, fill one graph")
    ng.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N, mps (a missing one is an error)")
    ng.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16", "auto"],
                    help="precision (default float32; auto: bfloat16 on a GPU or a CPU with hardware bfloat16)")
    ng.add_argument("--fast-dtype", default=None, choices=["float32", "bfloat16", "float16", "auto"],
                    help="a second copy of the model in this precision runs the prune, base and substitution "
                         "stages, the substitutes and masking importance, whose rows near the importance threshold "
                         "run again in --dtype (bench_n2g: held-out F1 kept; auto: bfloat16 where it is fast)")
    ng.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default; 1 when other jobs load the CPU: two threads that wait "
                         "for each other's core were 4-10x slower, bench_n2g)")
    ng.add_argument("--group", type=int, default=64,
                    help="neurons fitted together, of any layers: every layer is read from the same forward passes "
                         "(more share more, and hold more memory)")
    ng.add_argument("--sweep", action="store_true",
                    help="all the neurons at once, a block of contexts at a time: neurons that peak on the same "
                         "contexts share every forward pass (the same graphs, 3.8x less CPU per neuron on the "
                         "demo's corpus, bench_n2g_sweep); neurons are stored as their last block ends, most near "
                         "the end; resumable")
    ng.add_argument("--contexts-per-block", type=int, default=4, help="contexts fitted together by --sweep")
    ng.add_argument("--worker", type=_shard, default=None, metavar="I/N",
                    help="with --sweep: one of N processes on this machine sweeping every layer together (each "
                         "fits the blocks nobody has claimed and stores layers with layer %% N == I); unlike "
                         "--shard, every forward pass then serves the neurons of all layers (1.5x less CPU)")
    ng.add_argument("--top-k", type=int, default=20, help="top examples per neuron (half train, half held out)")
    ng.add_argument("--force", action="store_true", help="refit neurons that already have a pattern graph")
    ng.add_argument("--quiet", action="store_true", help="no progress bar")

    im = sub.add_parser("import", help="import public neuron data (neuroscope, deepdecipher, openai, "
                                       "universal-neurons, n2g)")
    im.add_argument("source", choices=["neuroscope", "deepdecipher", "openai", "universal-neurons", "n2g"])
    im.add_argument("path", help="a file, a directory tree, or a URL when the network allows")
    im.add_argument("--model", help="model name in the graph (default: from the data)")
    im.add_argument("--model-info", help="sizes when the data lacks them: 'n_layers=12,d_mlp=3072' or a JSON file")
    im.add_argument("--vocab", help="token texts: a JSON list (id -> text) or object (text -> id)")
    im.add_argument("--k", type=int, help="Universal Neurons tensors: top entries to import per list (default 10)")
    im.add_argument("--neurons", help="with a base URL: the neurons to fetch, 'L/N,L/N,...'")
    im.add_argument("--option", "-o", action="append", default=[], help="NAME=VALUE (JSON) passed to the importer")

    ex = sub.add_parser("export", help="export the graph (neo4j-admin CSV, GraphML, JSON Lines)")
    ex.add_argument("dir")
    ex.add_argument("--format", action="append", choices=["neo4j-csv", "graphml", "jsonl"])
    ex.add_argument("--model", help="only this model")

    tp = sub.add_parser("topology", help="compute neuron roles and communities (networkx) and store them")
    tp.add_argument("model")
    tp.add_argument("--kinds", nargs="+", default=list(TOPOLOGY_KINDS),
                    help="edge types or TYPE:kind to analyse (default: %(default)s)")
    tp.add_argument("--min-weight", type=float, default=0.0, help="ignore edges with a smaller |weight|")
    tp.add_argument("--per-node", type=int, default=8,
                    help="keep the edges among each neuron's strongest N (0: all; slow on a whole model)")
    tp.add_argument("--betweenness-k", type=int, default=32,
                    help="betweenness from this many sampled sources (0: exact, slow on a whole model)")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--circuits", action="store_true",
                    help="analyse the corpus circuits (ATTRIBUTES_TO) instead, stored as circuit_role, "
                         "circuit_community, ... (`neurograph circuits` does it after each run)")

    cc = sub.add_parser("circuits", help="attribution graphs over corpus prompts, merged into ATTRIBUTES_TO edges")
    cc.add_argument("model", help="the model to run (e.g. smollm2-135m), whose graph it writes into")
    cc.add_argument("--prompts", type=int, default=256)
    cc.add_argument("--prompt-len", type=int, default=16, help="tokens per prompt (BOS included)")
    cc.add_argument("--max-neurons", type=int, default=64, help="candidate neurons per graph")
    cc.add_argument("--k", type=int, default=20, help="ATTRIBUTES_TO edges kept per source neuron")
    cc.add_argument("--force", action="store_true", help="run again even if circuits with these settings are stored")
    cc.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default; 1 is ~10x faster on a CPU that other jobs load)")
    cc.add_argument("--quiet", action="store_true", help="no progress bar")

    nb = sub.add_parser("neighbours", help="make each unit's strongest-edge lists, which neighbourhoods and "
                                           "listings read instead of every edge (build and circuits do it)")
    nb.add_argument("model", nargs="?", help="only this model (default: every model in the graph)")

    pg = sub.add_parser("pages", help="pre-render every neuron's page into the API's on-disk cache")
    pg.add_argument("model")
    pg.add_argument("--layers", type=int, nargs="*", default=None, help="only these layers")
    pg.add_argument("--concurrency", type=int, default=4, help="pages rendered at once")

    for name, help_ in (("serve", "serve GraphQL, REST and the web UI"),
                        ("demo", "build the offline demo graph (once) and serve it")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=8000)
        s.add_argument("--log-level", default="info")
        s.add_argument("--n2g", action=argparse.BooleanOptionalAction, default=name == "demo",
                       help="keep computing N2G for every neuron in a background process while serving, most "
                            "interesting first, resumed at the next start (default: on for demo, off for serve)")
        s.add_argument("--n2g-jobs", type=int, default=0,
                       help="background N2G processes, each a shard of the layers on one thread, niced "
                            "(0: one per CPU core, at most 4)")
        s.add_argument("--pages", action=argparse.BooleanOptionalAction, default=name == "demo",
                       help="pre-render every neuron's page in the background while serving "
                            "(default: on for demo, off for serve; `neurograph pages` does it up front)")
        s.add_argument("--model", default=DEMO_MODEL if name == "demo" else None,
                       help="run a model worker for this model beside the API (runText, neuronActivations, "
                            "steer); demo: the demo model (--model '' for none)")
        s.add_argument("--device", default="cpu", help="the model worker's device (cpu, cuda, mps)")
        s.add_argument("--processes", type=int, default=0,
                       help="API processes on the port (0: one per CPU core, at most 4); one of them runs "
                            "FalkorDB, the model worker and the page renderer for all")
        if name == "demo":
            s.add_argument("--tokens", type=int, default=16384)
            s.add_argument("--rebuild", action="store_true")
            s.add_argument("--no-serve", action="store_true", help="build only")
    return p


async def _circuits(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from loaders.attribution import corpus_circuits, stored_circuits
    from loaders.model import load_model

    from .store import open_store

    if args.threads:
        torch.set_num_threads(args.threads)
    run = dict(n_prompts=args.prompts, prompt_len=args.prompt_len, max_neurons=args.max_neurons, k=args.k)
    store = await open_store(settings)
    try:
        try:  # done already (the demo's background pass at every start)? Then no model to load
            summary = None if args.force else await stored_circuits(store, args.model, **run)
        except NeuroGraphError:  # e.g. a hub id rather than the graph's name: asked again after loading
            summary = None
        if summary is not None:
            _console().print_json(json.dumps(summary))
            return 0
        model = load_model(args.model)
        summary = await corpus_circuits(
            store, model, **run, checkpoint=settings.data_dir / "checkpoints" / f"circuits-{model.name}.jsonl",
            force=args.force, progress=not args.quiet)
    finally:
        await store.close()
    summary["neighbour_lists"] = await _lists_of(settings, model.name, missing=True)  # the units it touched
    _console().print_json(json.dumps(summary))
    return 0


ASYNC = {"cypher": _cypher, "build": _build, "n2g": _n2g, "import": _import, "export": _export, "topology": _topology,
         "pages": _pages, "circuits": _circuits, "neighbours": _neighbours}
SYNC = {"db": cmd_db, "serve": cmd_serve, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command in ASYNC:
            return asyncio.run(ASYNC[args.command](args, settings))
        return SYNC[args.command](args, settings)
    except (NeuroGraphError, ValueError) as e:
        _error(e)
        return 1
    except KeyboardInterrupt:
        _console().print("[yellow]interrupted: re-run the same command to resume[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
