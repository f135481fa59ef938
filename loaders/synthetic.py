"""A deterministic synthetic graph with every node and edge kind, at any size.

Used by the API, web and scale tests and by benchmarks (GPT-2-small or XL-sized graphs
without a model): stats, histograms, quantiles, examples (max / min / random), explanations,
N2G pattern nodes with token matches, COMPOSES (virtual, out_in), CORRELATES, HEAD_COMPOSES
(Q/K/V and O), TOKEN_EFFECT (input / output / activation) and SIMILAR edges, plus topology
props (role, community, degree, strength, betweenness).

    info = await write_synthetic_graph(store, "synth", n_layers=4, d_mlp=32)
    # GPT-2 small shape:  n_layers=12, d_mlp=3072, n_heads=12, d_vocab=50257

Same arguments, same graph: every value comes from one seeded numpy generator, and every
write is an idempotent MERGE, so an interrupted run is resumed by running it again.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from neurograph.domain import (
    ModelInfo, example_key, explanation_key, head_key, layer_key, neuron_key, pattern_key, token_key,
)
from neurograph.progress import progress_bar
from neurograph.store import Store

WORDS = ("the", "of", "Paris", "capital", "France", "river", "code", "def", "return", "king", "God", "said",
         "and", "in", "to", "is", "was", "for", "on", "with", "as", "at", "by", "from", "light", "day")
ROLES = ("hub", "connector", "peripheral", "isolated")


def token_text(i: int) -> str:
    """Token i's text: a word with a leading space, numbered after the first round of words."""
    w = WORDS[i % len(WORDS)]
    return f" {w}" if i < len(WORDS) else f" {w}{i // len(WORDS)}"


def _f(x: Any) -> float:
    return round(float(x), 6)


class _Writer:
    """Writes named batches with one progress bar over all of them (when asked)."""

    def __init__(self, store: Store, batch_size: int, progress: bool) -> None:
        self.store = store
        self.batch_size = batch_size
        self.bar = progress_bar(progress)

    async def __call__(self, name: str, rows: list[dict]) -> None:
        if not rows:
            return
        task = self.bar.add_task(name, total=len(rows))
        await self.store.write(name, rows, batch_size=self.batch_size,
                               progress=lambda n: self.bar.advance(task, n))


async def write_synthetic_graph(
    store: Store, model: str = "synth", n_layers: int = 4, d_mlp: int = 32, n_heads: int = 4,
    d_vocab: int = 200, k: int = 5, seed: int = 0, n_examples: int = 3, *, ctx_len: int = 12,
    n_contexts: int | None = None, n_bins: int = 16, pattern_every: int = 2, batch_size: int = 5000,
    progress: bool = False,
) -> ModelInfo:
    """Write a synthetic model graph into ``store`` and return its ModelInfo.

    Per neuron: ``k`` COMPOSES edges of kind ``virtual`` into the next layer and ``k`` of kind
    ``out_in`` into any later layer, ``k`` CORRELATES, ``k`` TOKEN_EFFECT of each kind, two
    HEAD_COMPOSES each way where heads exist, ``n_examples`` examples of each kind, one
    explanation; every ``pattern_every``-th neuron gets an N2G pattern and SIMILAR edges.
    """
    rng = np.random.default_rng(seed)
    info = ModelInfo(model, n_layers, d_mlp, d_model=max(1, d_mlp // 4), n_heads=n_heads, d_vocab=d_vocab,
                     act_fn="gelu", source="synthetic", dataset="synthetic", n_tokens=ctx_len * (n_contexts or 0))
    w = _Writer(store, batch_size, progress)
    n = n_layers * d_mlp
    layers = np.repeat(np.arange(n_layers), d_mlp)
    idx = np.tile(np.arange(d_mlp), n_layers)
    keys = [neuron_key(model, int(l), int(i)) for l, i in zip(layers, idx)]
    n_contexts = n_contexts or max(20, 4 * n_examples)
    info.n_tokens = ctx_len * n_contexts

    w.bar.start()
    try:
        await w("upsert_models", [info.row()])
        await w("upsert_layers", [{"key": layer_key(model, l), "model": model, "layer": l, "n_neurons": d_mlp}
                                  for l in range(n_layers)])

        # Neuron stats: moments, quantiles, a histogram consistent with min/max, topology.
        mean = rng.normal(0, 0.2, n)
        var = rng.gamma(2.0, 0.1, n)
        skew = rng.normal(1, 1, n)
        kurt = rng.gamma(2.0, 3.0, n)
        mx = np.abs(rng.normal(3, 1, n)) + 0.5
        mn = -np.abs(rng.normal(0.2, 0.1, n))
        frac = rng.uniform(0.001, 0.5, n)
        interest = kurt * (1 - frac)
        counts = rng.integers(0, 1000, (n, n_bins)).tolist()
        community = rng.integers(0, max(2, n_layers), n).tolist()
        role = rng.integers(0, len(ROLES), n).tolist()
        levels = [0.5, 0.9, 0.99, 0.999]
        edges = np.round(mn[:, None] + (mx - mn)[:, None] * np.linspace(0, 1, n_bins + 1), 6).tolist()
        quant = np.round(mn[:, None] + (mx - mn)[:, None] * np.sort(rng.uniform(0, 1, (n, len(levels))), axis=1),
                         6).tolist()
        f1 = np.round(rng.uniform(0.3, 1.0, n), 6).tolist()
        cols = {name: np.round(v, 6).tolist() for name, v in (
            ("mean", mean), ("var", var), ("skew", skew), ("kurt", kurt), ("max", mx), ("min", mn),
            ("frac_active", frac), ("interest", interest), ("strength", kurt / 10), ("betweenness", frac / 10))}
        neurons = []
        for j in range(n):
            props = {name: v[j] for name, v in cols.items()}
            props.update({"quantiles": quant[j], "quantile_levels": levels, "hist_edges": edges[j],
                          "hist_counts": counts[j], "role": ROLES[role[j]], "community": community[j],
                          "degree": 4 * k})
            if j % pattern_every == 0:
                props["n2g_firing_f1"] = f1[j]
            neurons.append({"key": keys[j], "model": model, "layer": int(layers[j]), "index": int(idx[j]),
                            "layer_key": layer_key(model, int(layers[j])), "props": props})
        await w("upsert_neurons", neurons)

        heads = [{"key": head_key(model, l, h), "model": model, "layer": l, "head": h,
                  "layer_key": layer_key(model, l)} for l in range(n_layers) for h in range(n_heads)]
        await w("upsert_heads", heads)
        await w("upsert_tokens", [{"key": token_key(model, t), "model": model, "id": t, "text": token_text(t)}
                                  for t in range(d_vocab)])

        # Contexts shared by neurons; per-neuron activations over each, generated in one go.
        ctx_tokens = rng.integers(0, d_vocab, (n_contexts, ctx_len))
        await w("upsert_examples", [{"key": example_key(model, c), "model": model,
                                     "tokens": [token_text(int(t)) for t in ctx_tokens[c]],
                                     "data_index": c, "source": "synthetic"} for c in range(n_contexts)])
        e = min(n_examples, n_contexts)
        kinds = ("max", "min", "random")
        chosen = np.argsort(rng.random((n, 3, n_contexts)), axis=2)[:, :, :e]  # distinct contexts per kind
        acts = rng.normal(0, 0.3, (n, 3, e, ctx_len))
        pivots = rng.integers(0, ctx_len, (n, 3, e))
        ranks = np.arange(e)
        ni, ei = np.arange(n)[:, None], ranks[None, :]
        acts[ni, 0, ei, pivots[:, 0]] = mx[:, None] * (1 - 0.1 * ranks)[None, :] + 1.0  # above the noise
        acts[ni, 1, ei, pivots[:, 1]] = mn[:, None] - 1.0 - 0.1 * ranks[None, :]
        pivots[:, 0], pivots[:, 1], pivots[:, 2] = acts[:, 0].argmax(2), acts[:, 1].argmin(2), acts[:, 2].argmax(2)
        amax, amin = np.round(acts.max(axis=3), 6).tolist(), np.round(acts.min(axis=3), 6).tolist()
        acts_l, piv_l, ch_l = np.round(acts, 6).tolist(), pivots.tolist(), chosen.tolist()
        ex_keys = [example_key(model, c) for c in range(n_contexts)]
        rows = [{"neuron": keys[j], "example": ex_keys[ch_l[j][q][r]], "kind": kinds[q], "rank": r,
                 "activations": acts_l[j][q][r], "max_activation": amax[j][q][r], "min_activation": amin[j][q][r],
                 "pivot": piv_l[j][q][r]}
                for j in range(n) for q in range(3) for r in range(e)]
        await w("upsert_activations", rows)

        expl = []
        for j in range(n):
            t1, t2 = token_text(int(rng.integers(0, d_vocab))), token_text(int(rng.integers(0, d_vocab)))
            text = f"fires on{t1} after{t2} in layer {int(layers[j])}"
            expl.append({"key": explanation_key(model, int(layers[j]), int(idx[j]), "synthetic", text),
                         "neuron": keys[j], "source": "synthetic", "text": text, "score": _f(rng.uniform(0, 1)),
                         "scores": {"ev_correlation": _f(rng.uniform(-0.2, 1))}})
        await w("upsert_explanations", expl)

        await w("upsert_composes", _composes(rng, model, n_layers, d_mlp, k))
        await w("upsert_correlates", _pairs(rng, keys, k, lo=-1.0, hi=1.0))
        n2h, h2n = _head_edges(rng, model, n_layers, d_mlp, n_heads)
        await w("upsert_neuron_to_head", n2h)
        await w("upsert_head_to_neuron", h2n)
        await w("upsert_token_effects", _token_effects(rng, model, keys, d_vocab, k))

        pnodes, pedges, pmatch, patterned = [], [], [], []
        for j in range(0, n, pattern_every):
            l, i = int(layers[j]), int(idx[j])
            toks = rng.choice(d_vocab, size=3, replace=False)
            patterned.append(j)
            for p, (t, depth, prole) in enumerate(zip(toks, (0, 1, 2), ("activating", "important", "important"))):
                pk = pattern_key(model, l, i, p)
                pnodes.append({"key": pk, "neuron": keys[j], "token": token_text(int(t)),
                               "token_key": token_key(model, int(t)), "depth": depth, "role": prole,
                               "activation": _f(1.0 - 0.3 * depth), "is_end": p == 0})
                pmatch.append({"pattern": pk, "token": token_key(model, int(t)), "role": prole})
                if p > 0:
                    pedges.append({"src": pattern_key(model, l, i, p - 1), "dst": pk})
        await w("upsert_pattern_nodes", pnodes)
        await w("upsert_pattern_edges", pedges)
        await w("upsert_pattern_matches", pmatch)
        sim: dict[tuple[str, str], dict] = {}  # one edge per unordered pair (MERGE in one batch would duplicate)
        for a in patterned:
            for b in rng.choice(patterned, size=min(2, len(patterned)), replace=False):
                if a != b:
                    s, d = sorted((keys[a], keys[int(b)]))
                    wt = _f(rng.uniform(0.1, 1))
                    sim.setdefault((s, d), {"src": s, "dst": d, "weight": wt})
        await w("upsert_similar", list(sim.values()))
    finally:
        w.bar.stop()
    await _trace_and_circuits(store, rng, model, n_layers, d_mlp, min(d_vocab, 4))
    return info


async def _trace_and_circuits(store: Store, rng: np.random.Generator, model: str, n_layers: int, d_mlp: int,
                              n_tokens: int) -> None:
    """One attribution trace (tokens -> one neuron per layer at the last position -> a logit) and
    ATTRIBUTES_TO edges from each layer's first neurons to the next layer's."""
    from neurograph.traces import save_corpus_circuits, save_trace

    last = n_tokens - 1
    nodes = [{"id": f"t{p}", "kind": "token", "position": p, "layer": None, "index": None, "token_id": p,
              "token": token_text(p), "activation": None, "influence": _f(rng.uniform(0, 1))} for p in range(n_tokens)]
    chain = [f"t{last}"]
    for l in range(n_layers):
        i = int(rng.integers(0, d_mlp))
        nodes.append({"id": f"n{l}.{last}.{i}", "kind": "neuron", "position": last, "layer": l, "index": i,
                      "token_id": last, "token": token_text(last), "activation": _f(rng.uniform(0.5, 3)),
                      "influence": _f(rng.uniform(0.1, 1))})
        chain.append(f"n{l}.{last}.{i}")
    nodes.append({"id": "logit", "kind": "logit", "position": last, "layer": None, "index": None, "token_id": 0,
                  "token": token_text(0), "activation": 5.0, "influence": 1.0})
    chain.append("logit")
    edges = [{"source": a, "target": b, "weight": _f(rng.uniform(0.1, 2))} for a, b in zip(chain, chain[1:])]
    await save_trace(store, {"model": model, "prompt": " ".join(token_text(p) for p in range(n_tokens)),
                             "tokens": [token_text(p) for p in range(n_tokens)], "target": token_text(0),
                             "target_id": 0, "target_logit": 5.0, "nodes": nodes, "edges": edges}, created=0.0)
    rows = [{"src_layer": l, "src_index": i, "dst_layer": l + 1, "dst_index": int(rng.integers(0, d_mlp)),
             "mean": _f(rng.normal(0, 1)), "abs_mean": _f(rng.uniform(0, 1)), "count": int(rng.integers(1, 9)),
             "prompts": 8}
            for l in range(n_layers - 1) for i in range(min(d_mlp, 3))]
    tokens = [{"src_layer": n_layers - 1, "src_index": i, "token_id": 0, "mean": _f(rng.normal(0, 1)),
               "abs_mean": _f(rng.uniform(0, 1)), "count": 2, "prompts": 8} for i in range(min(d_mlp, 3))]
    await save_corpus_circuits(store, model, rows, tokens)


def _composes(rng: np.random.Generator, model: str, n_layers: int, d_mlp: int, k: int) -> list[dict]:
    """``k`` virtual edges into the next layer and ``k`` out_in edges into any later layer."""
    rows: list[dict] = []
    kk = min(k, d_mlp)
    for l in range(n_layers - 1):
        for i in range(d_mlp):
            src = neuron_key(model, l, i)
            dst = rng.choice(d_mlp, size=kk, replace=False)
            wv = np.sort(rng.normal(0, 1, kk))[::-1]
            for r, (d, wt) in enumerate(zip(dst, wv)):
                rows.append({"src": src, "dst": neuron_key(model, l + 1, int(d)), "kind": "virtual",
                             "weight": _f(wt), "rank": r})
            later = rng.integers(l + 1, n_layers, kk)
            di = rng.integers(0, d_mlp, kk)
            wo = np.sort(rng.uniform(-1, 1, kk))[::-1]
            seen = set()
            for r, (ll, d, wt) in enumerate(zip(later, di, wo)):
                dk = neuron_key(model, int(ll), int(d))
                if dk in seen:
                    continue  # MERGE keeps one edge of a kind per pair
                seen.add(dk)
                rows.append({"src": src, "dst": dk, "kind": "out_in", "weight": _f(wt), "rank": r})
    return rows


def _pairs(rng: np.random.Generator, keys: list[str], k: int, lo: float, hi: float) -> list[dict]:
    n = len(keys)
    rows = []
    for j in range(n):
        others = rng.choice(n - 1, size=min(k, n - 1), replace=False)
        others = others + (others >= j)  # skip self
        ws = np.sort(rng.uniform(lo, hi, len(others)))[::-1]
        rows.extend({"src": keys[j], "dst": keys[int(o)], "weight": _f(wt), "rank": r}
                    for r, (o, wt) in enumerate(zip(others, ws)))
    return rows


def _head_edges(rng: np.random.Generator, model: str, n_layers: int, d_mlp: int,
                n_heads: int) -> tuple[list[dict], list[dict]]:
    n2h, h2n = [], []
    if n_heads <= 0:
        return n2h, h2n
    for l in range(n_layers):
        for i in range(d_mlp):
            nk = neuron_key(model, l, i)
            if l + 1 < n_layers:  # neuron output read by a later head's Q, K or V
                for r, h in enumerate(rng.choice(n_heads, size=min(2, n_heads), replace=False)):
                    kind = ("Q", "K", "V")[int(rng.integers(0, 3))]
                    n2h.append({"neuron": nk, "head": head_key(model, l + 1, int(h)), "kind": kind,
                                "weight": _f(rng.normal(0, 1)), "rank": r})
            for r, h in enumerate(rng.choice(n_heads, size=min(2, n_heads), replace=False)):  # same-layer head O
                h2n.append({"neuron": nk, "head": head_key(model, l, int(h)), "kind": "O",
                            "weight": _f(rng.normal(0, 1)), "rank": r})
    return n2h, h2n


def _token_effects(rng: np.random.Generator, model: str, keys: Iterable[str], d_vocab: int, k: int) -> list[dict]:
    rows = []
    kk = min(k, d_vocab)
    for nk in keys:
        for kind in ("input", "output", "activation"):
            toks = rng.choice(d_vocab, size=kk, replace=False)
            ws = np.sort(rng.normal(0, 1, kk))[::-1]
            rows.extend({"neuron": nk, "token": token_key(model, int(t)), "kind": kind, "weight": _f(wt),
                         "rank": r, "count": int(rng.integers(1, 100)) if kind == "activation" else None}
                        for r, (t, wt) in enumerate(zip(toks, ws)))
    return rows
