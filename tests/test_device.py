"""``--device`` and ``--dtype``: cpu and auto work; a device asked for and missing is a clear
error before anything is loaded or written; bfloat16 runs the same build."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.device import DeviceError, check_pair, resolve_device, resolve_dtype
from loaders.model import tiny_model
from loaders.pipeline import build
from neurograph.cli import main

NO_CUDA = not torch.cuda.is_available()


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype(None) is torch.float32


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA device is present")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match=r"--device cuda was asked for but .*use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="cuda:1"):
        resolve_device("cuda:1")


def test_unknown_device_dtype_and_bad_pairs():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="unknown dtype"):
        resolve_dtype("int3")
    with pytest.raises(DeviceError, match="bfloat16"):
        check_pair(torch.device("cpu"), torch.float16)
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceError, match="MPS"):
            resolve_device("mps")


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA device is present")
def test_cli_build_on_a_missing_device_fails_before_loading(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROGRAPH_DATA_DIR", str(tmp_path))
    assert main(["build", "--device", "cuda", "--analyses", "activations"]) == 1
    out = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "error:" in out and "--device cuda" in out
    assert not any(tmp_path.iterdir())  # no store started, nothing written


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0, n_layers=2, d_model=64, d_mlp=32, n_heads=4)


async def test_build_with_device_auto_and_cpu(store, settings, tiny):
    kw = dict(store=store, n_tokens=512, ctx_len=16, top_k=3, edge_k=2, n2g_neurons=1, batch_size=8,
              progress=False, analyses=["activations", "composition", "n2g"])
    summary = await build(settings, loaded=tiny, device="cpu", **kw)
    assert summary["device"] == "cpu" and summary["dtype"] == "float32"
    before = await store.run("MATCH (n:Neuron {model: $m}) RETURN n.key AS k, n.max AS mx ORDER BY k", {"m": tiny.name})
    summary = await build(settings, loaded=tiny, device="auto", **kw)
    assert summary["device"] == resolve_device("auto").type
    if summary["device"] == "cpu":
        assert await store.run("MATCH (n:Neuron {model: $m}) RETURN n.key AS k, n.max AS mx ORDER BY k",
                               {"m": tiny.name}) == before


async def test_build_in_bfloat16(store, settings):
    m = tiny_model(seed=1, n_layers=2, d_model=64, d_mlp=32, n_heads=4)
    summary = await build(settings, store=store, loaded=m, device="cpu", dtype="bfloat16", n_tokens=512, ctx_len=16,
                          top_k=3, edge_k=2, n2g_neurons=1, batch_size=8, progress=False,
                          analyses=["activations", "composition", "n2g"])
    assert summary["dtype"] == "bfloat16" and next(m.bridge.parameters()).dtype == torch.bfloat16
    n2g = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.n2g_nodes IS NOT NULL RETURN count(n) AS c",
                          {"m": m.name})
    assert n2g[0]["c"] == 2
    comp = await store.run("MATCH (:Neuron {model: $m})-[e:COMPOSES]->() RETURN count(e) AS c", {"m": m.name})
    assert comp[0]["c"] > 0


def test_shard_selects_every_nth_layer():
    import argparse

    from neurograph.cli import _shard, _shard_layers, build_parser

    args = build_parser().parse_args(["n2g", "--shard", "1/4"])
    assert args.shard == (1, 4) and args.neurons == "all"
    assert _shard_layers(args, 10) == [1, 5, 9]
    args = build_parser().parse_args(["n2g", "--shard", "0/2", "--layers", "0", "1", "2", "4"])
    assert _shard_layers(args, 6) == [0, 2, 4]
    for bad in ("4/4", "1", "a/b", "0/0"):
        with pytest.raises(argparse.ArgumentTypeError):
            _shard(bad)


def test_demo_starts_n2g_in_a_separate_process(monkeypatch, tmp_path):
    import json
    import subprocess
    import sys

    from neurograph import cli
    from neurograph.config import Settings

    started = []

    class FakePopen:
        def __init__(self, cmd, **kw):
            started.append(cmd)
            self.pid = 4242 + len(started)

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setenv("NEUROGRAPH_DATA_DIR", str(tmp_path))
    procs = cli._start_n2g_background(Settings.from_env(), "smollm2-135m", 2)
    assert [p.pid for p in procs] == [4243, 4244]
    assert all(cmd[:3] == [sys.executable, "-m", "neurograph.background"] for cmd in started)
    # the first: circuits, then its shard's most interesting neurons, then a sweep over the rest
    circuits, first, n2g = json.loads(started[0][3])
    other_first, other = json.loads(started[1][3])  # the second: the same for its shard at once
    assert circuits[3] == "circuits" and n2g[:4] == [sys.executable, "-m", "neurograph", "n2g"]
    assert "--neurons" in n2g and "all" in n2g and "auto" in n2g  # --device auto
    parser = cli.build_parser()
    parsed = parser.parse_args(n2g[3:])  # the flags are the real parser's
    assert parsed.threads == 1 and parsed.fast_dtype == "auto" and parsed.neurons == "all" and parsed.sweep
    assert parser.parse_args(first[3:]).neurons == str(cli.DEMO_FIRST) and not parser.parse_args(first[3:]).sweep
    # the first phase by layer shards, the sweep by workers over every layer
    assert parser.parse_args(first[3:]).shard == (0, 2) and parser.parse_args(other_first[3:]).shard == (1, 2)
    assert parsed.worker == (0, 2) and parser.parse_args(other[3:]).worker == (1, 2) and parsed.shard is None
    started.clear()
    (one,) = cli._start_n2g_background(Settings.from_env(), "smollm2-135m", 1)
    assert not any("--shard" in c or "--worker" in c for c in json.loads(started[0][3])[1:])  # one job: all
    assert (tmp_path / "n2g-background.log").exists()
    assert cli.build_parser().parse_args(["demo"]).n2g is True
    assert cli.build_parser().parse_args(["serve"]).n2g is False
    assert cli.build_parser().parse_args(["demo", "--n2g-jobs", "3"]).n2g_jobs == 3


async def test_n2g_with_a_bfloat16_copy_for_the_fast_stages(store, settings):
    from loaders.pipeline import run_n2g

    m = tiny_model(seed=2, n_layers=2, d_model=64, d_mlp=32, n_heads=4)
    fast = tiny_model(seed=2, n_layers=2, d_model=64, d_mlp=32, n_heads=4).place("cpu", "bfloat16")
    await build(settings, store=store, loaded=m, n_tokens=512, ctx_len=16, top_k=4, edge_k=2, batch_size=8,
                progress=False, analyses=["activations"])
    summary = await run_n2g(store, m, n2g_neurons=2, top_k=4, progress=False, fast=fast, similar_every_s=None)
    assert summary["done"] + len(summary["failed"]) == 4 and summary["done"] >= 1
    assert next(fast.bridge.parameters()).dtype == torch.bfloat16
    assert build_parser_args(["n2g", "--fast-dtype", "auto"]).fast_dtype == "auto"


async def test_n2g_sweep_stores_the_graphs_of_the_grouped_pass(store, settings):
    """The pipeline's sweep (every neuron at once, block by block of contexts) stores what the
    grouped pass stores, on a real (tiny) model, and leaves no kept blocks behind."""
    from loaders.pipeline import run_n2g, sweep_folder

    m = tiny_model(seed=2, n_layers=2, d_model=64, d_mlp=32, n_heads=4)
    await build(settings, store=store, loaded=m, n_tokens=512, ctx_len=16, top_k=4, edge_k=2, batch_size=8,
                progress=False, analyses=["activations"])

    async def graphs():  # (graphs without their activations, the activations): batch shapes change float32's last bits
        import json

        rows = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.n2g_graph IS NOT NULL "
                               "RETURN n.layer AS l, n.index AS i, n.n2g_graph AS g, n.n2g_firing_f1 AS f "
                               "ORDER BY l, i", {"m": m.name})
        acts = []
        for r in rows:
            r["g"] = json.loads(r["g"])
            for node in r["g"]["graph"]["nodes"]:
                acts.append(node.pop("activation") if node["activation"] is not None else float("nan"))
        return rows, np.array(acts)

    # build's N2G step for every neuron sweeps; its blocks are kept under the data dir until it ends
    swept = await build(settings, store=store, loaded=m, top_k=4, progress=False, analyses=["n2g"], n2g_neurons=None)
    after_sweep, sweep_acts = await graphs()
    folder = sweep_folder(settings, m.name, None)
    assert folder.is_dir() and not any(folder.iterdir())
    grouped = await run_n2g(store, m, n2g_neurons=None, top_k=4, progress=False, similar_every_s=None, group=8,
                            force=True)
    assert swept["n2g"]["done"] == grouped["done"] == len(after_sweep) > 10
    after_groups, group_acts = await graphs()
    assert after_groups == after_sweep
    np.testing.assert_allclose(group_acts, sweep_acts, rtol=0, atol=1e-4, equal_nan=True)
    assert build_parser_args(["n2g", "--sweep"]).sweep is True


async def test_a_resumed_sweep_writes_only_the_neurons_not_stored(store, settings, monkeypatch):
    """An interrupted sweep goes on from its kept blocks with the neurons it started with; those
    stored meanwhile (by its first blocks, or fitted on their own as the demo's first step does)
    are not written again, and every other neuron is."""
    import loaders.n2g.storage as storage
    from loaders.pipeline import run_n2g, sweep_folder

    m = tiny_model(seed=2, n_layers=2, d_model=64, d_mlp=32, n_heads=4)
    await build(settings, store=store, loaded=m, n_tokens=512, ctx_len=16, top_k=4, edge_k=2, batch_size=8,
                progress=False, analyses=["activations"])
    folder = sweep_folder(settings, m.name, None)
    real = storage.run_sweep

    class Interrupted(Exception):
        pass

    def three_blocks(*a, **kw):  # the sweep stopped after its third block (Ctrl-C at a restart)
        for n, item in enumerate(real(*a, **kw)):
            yield item
            if n == 2:
                raise Interrupted

    monkeypatch.setattr(storage, "run_sweep", three_blocks)
    with pytest.raises(Interrupted):
        await run_n2g(store, m, n2g_neurons=None, top_k=4, progress=False, similar_every_s=None, sweep=folder)
    monkeypatch.setattr(storage, "run_sweep", real)
    assert any(folder.glob("block-*"))
    await run_n2g(store, m, n2g_neurons=2, top_k=4, progress=False, similar_every_s=None)  # the demo's first step

    async def covered():
        rows = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.n2g_graph IS NOT NULL RETURN n.key AS k",
                               {"m": m.name})
        return {r["k"] for r in rows}

    before = await covered()
    assert len(before) >= 4
    # marked: written again, they would lose it
    await store.run("MATCH (n:Neuron {model: $m}) WHERE n.n2g_graph IS NOT NULL SET n.n2g_firing_f1 = -1.0",
                    {"m": m.name}, write=True)
    resumed = await run_n2g(store, m, n2g_neurons=None, top_k=4, progress=False, similar_every_s=None, sweep=folder)
    after = await covered()
    assert resumed["done"] == len(after - before) > 0 and resumed["skipped"] == len(before)
    rows = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.n2g_firing_f1 = -1.0 RETURN n.key AS k", {"m": m.name})
    assert {r["k"] for r in rows} == before
    firing = await store.run("MATCH (n:Neuron {model: $m}) WHERE n.max > 0 AND n.n2g_graph IS NULL RETURN count(n) AS c",
                             {"m": m.name})
    assert firing[0]["c"] == 0 and not any(folder.iterdir())


def build_parser_args(argv):
    from neurograph.cli import build_parser

    return build_parser().parse_args(argv)
