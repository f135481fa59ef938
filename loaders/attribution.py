"""Per-prompt attribution graphs over MLP neurons, and their merge across a corpus.

Method (first-order, as circuit-tracer does on transcoder features, here on raw neurons):

* The model runs once more with **attention patterns and normalisation scales frozen** at their
  values on the prompt, and with every MLP's output computed from a *leaf* copy of its
  activations. Then the residual stream, and so every logit and every MLP input, is a linear
  function of the sources: the token embeddings and the neuron activations (plus constant
  biases). Gradients of a target therefore hold only **direct** effects: through the residual
  stream and frozen attention, never through another MLP.
* The effect of a source ``s`` on a target ``t`` is ``a_s * d t / d a_s`` (activation times
  gradient; for a token, its embedding times the gradient, summed). For a logit target this is
  an exact decomposition: the effects of all sources plus the biases sum to the logit. For a
  neuron target (its activation, a nonlinear function of its input) it is the first-order term
  at the actual input: exact for its pre-activation, a linearisation of its activation.
* Candidates: the ``max_neurons`` neurons (over all positions) with the largest direct effect
  on the target, then the direct-effect matrix among candidates and tokens (one batched
  backward per block of candidate rows). Pruning as circuit-tracer: total influence on the
  target through the normalised |effect| matrix, ``(I - A)^-1``; the nodes that carry
  ``node_threshold`` (0.8) of the cumulative influence are kept, and the edges that carry
  ``edge_threshold`` (0.98) of the kept edges' influence.

Neurons at the BOS position are left out of the candidates: they are the same on every prompt
(the attention sink), and their huge activations would otherwise take most of the influence.

Supported: Llama-style models (RMSNorm, rotary attention, gated MLP: SmolLM2 and the tiny test
model) and GPT-2-style ones (LayerNorm, learned positions, GELU MLP), through the Hugging Face
model under the TransformerLens bridge; the frozen forward is ``loaders/frozen.py``.

    graph = attribute(model, "The capital of France is", target=" Paris")
    graph.nodes, graph.edges          # plain rows, ready to store or draw
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .frozen import AttributionError, Frozen, architecture, frozen_forward
from .model import LoadedModel


@dataclass
class AttributionGraph:
    """Nodes: input tokens, neurons at positions, and the target logit. Edges: direct effects."""

    model: str
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    target: str
    target_id: int
    target_logit: float
    nodes: list[dict] = field(default_factory=list)  # {id, kind, position, layer, index, token_id, activation, influence}
    edges: list[dict] = field(default_factory=list)  # {source, target, weight}
    candidates: int = 0

    def as_dict(self) -> dict:
        return {"model": self.model, "prompt": self.prompt, "tokens": self.tokens, "token_ids": self.token_ids,
                "target": self.target, "target_id": self.target_id, "target_logit": self.target_logit,
                "nodes": self.nodes, "edges": self.edges, "candidates": self.candidates}


def _target_id(model: LoadedModel, target: str | int | None, logits: torch.Tensor) -> int:
    if target is None or target == "":
        return int(logits[-1].argmax())
    if isinstance(target, int):
        return target
    ids = model.to_tokens(target)
    if len(ids) != 1:
        raise AttributionError(f"the target {target!r} is {len(ids)} tokens; give one token (e.g. ' Paris')")
    return ids[0]


def _rows(frozen: Frozen, outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct effects of every source on each of ``outputs`` (scalars): [n, L, T, D] for neurons
    (activation x gradient), [n, T] for input embeddings (embedding . gradient) and [n] for all
    biases together (the gradient of their multiplier ``one``; 0 without biases)."""
    leaves = [frozen.one, frozen.embeds, *frozen.acts]
    y = torch.stack(outputs)
    eye = torch.eye(len(outputs))
    try:
        grads = torch.autograd.grad(y, leaves, grad_outputs=eye, is_grads_batched=True, retain_graph=True,
                                    allow_unused=True)
    except RuntimeError:  # an op without a batching rule: one row at a time
        per = [torch.autograd.grad(o, leaves, retain_graph=True, allow_unused=True) for o in outputs]
        grads = [torch.stack([p[i] if p[i] is not None else torch.zeros_like(leaves[i]) for p in per])
                 for i in range(len(leaves))]
    grads = [g if g is not None else torch.zeros((len(outputs), *leaf.shape)) for g, leaf in zip(grads, leaves)]
    tok = (grads[1] * frozen.embeds.detach()[None]).sum(-1)
    neu = torch.stack([g * a.detach()[None] for g, a in zip(grads[2:], frozen.acts)], dim=1)
    return neu, tok, grads[0]


@torch.enable_grad()
def attribute(model: LoadedModel, prompt: str, target: str | int | None = None, *, max_neurons: int = 200,
              node_threshold: float = 0.8, edge_threshold: float = 0.98, block: int = 32,
              max_tokens: int = 64) -> AttributionGraph:
    """The pruned attribution graph of ``prompt`` for the logit of ``target`` (one token; the
    model's own prediction when None) at the last position."""
    ids = model.to_tokens(prompt, prepend_bos=True)
    if len(ids) > max_tokens:
        raise AttributionError(f"the prompt is {len(ids)} tokens; the limit is {max_tokens}")
    fz = frozen_forward(model, ids)
    T = len(ids)
    tid = _target_id(model, target, fz.logits)
    logit = fz.logits[-1, tid]

    # candidates: the neurons with the largest direct effect on the target logit
    neu_t, tok_t, _ = _rows(fz, [logit])
    L, D = len(fz.acts), fz.acts[0].shape[-1]
    effect = neu_t[0].clone()
    effect[:, 0] = 0  # neurons at BOS: the same on every prompt (attention-sink constants), not circuit
    flat = effect.reshape(-1).abs()  # index = (l * T + p) * D + i
    k = min(max_neurons, int((flat > 0).sum()))
    order = flat.topk(k).indices.tolist() if k else []
    cand = [(i // (T * D), (i // D) % T, i % D) for i in order]
    # upstream closure: neurons feeding the candidates directly are candidates too if they rank;
    # rows: for each candidate neuron, its direct effects from every source
    outputs = [fz.acts_in[l][p, i] for l, p, i in cand]
    rows_n, rows_t = [], []
    for s in range(0, len(outputs), block):
        n, t, _ = _rows(fz, outputs[s:s + block])
        rows_n.append(n)
        rows_t.append(t)
    # node order: tokens (T), candidate neurons (k), the logit (1)
    N = T + k + 1
    A = np.zeros((N, N))  # A[target, source] = direct effect
    if k:
        cl, cp, ci = (torch.tensor(x) for x in zip(*cand))  # candidates as index columns
        A[T:T + k, :T] = torch.cat(rows_t).detach().numpy()
        A[T:T + k, T:T + k] = torch.cat([n[:, cl, cp, ci] for n in rows_n]).detach().numpy()
        A[N - 1, T:T + k] = neu_t[0][cl, cp, ci].detach().numpy()
    A[N - 1, :T] = tok_t[0].detach().numpy()

    influence = _influence(A)
    keep = _keep_nodes(influence, T, N, node_threshold)
    edges = _keep_edges(A, influence, keep, edge_threshold)

    strs = model.token_strs(ids)
    nodes = []
    for n in sorted(keep):
        if n < T:
            nodes.append({"id": f"t{n}", "kind": "token", "position": n, "layer": None, "index": None,
                          "token_id": ids[n], "token": strs[n], "activation": None, "influence": float(influence[n])})
        elif n == N - 1:
            nodes.append({"id": "logit", "kind": "logit", "position": T - 1, "layer": None, "index": None,
                          "token_id": tid, "token": model.token_strs([tid])[0], "activation": float(logit.detach()),
                          "influence": 1.0})
        else:
            l, p, i = cand[n - T]
            nodes.append({"id": f"n{l}.{p}.{i}", "kind": "neuron", "position": p, "layer": l, "index": i,
                          "token_id": ids[p], "token": strs[p], "activation": float(fz.acts[l][p, i].detach()),
                          "influence": float(influence[n])})
    name = {n: (f"t{n}" if n < T else "logit" if n == N - 1 else "n%d.%d.%d" % cand[n - T]) for n in keep}
    return AttributionGraph(model.name, prompt, strs, ids, model.token_strs([tid])[0], tid, float(logit.detach()), nodes,
                            [{"source": name[s], "target": name[t], "weight": float(w)} for t, s, w in edges],
                            candidates=k)


def _normalised(A: np.ndarray) -> np.ndarray:
    a = np.abs(A)
    sums = a.sum(axis=1, keepdims=True)
    return np.divide(a, sums, out=np.zeros_like(a), where=sums > 0)


def _influence(A: np.ndarray) -> np.ndarray:
    """Each node's total influence on the target (the last node), direct and through others:
    the last row of (I - Â)^-1 - I, with Â the row-normalised |A| (acyclic: converges)."""
    An = _normalised(A)
    N = len(A)
    e = np.zeros(N)
    e[-1] = 1.0
    total = np.linalg.solve((np.eye(N) - An).T, e)  # e^T (I - Â)^-1
    total[-1] = 1.0
    return total


def _keep_nodes(influence: np.ndarray, T: int, N: int, threshold: float) -> set[int]:
    """Tokens and the logit always; neurons by decreasing influence until ``threshold`` of the
    neurons' total influence is covered."""
    neurons = np.arange(T, N - 1)
    keep = set(range(T)) | {N - 1}
    if not len(neurons):
        return keep
    order = neurons[np.argsort(-influence[neurons])]
    total = influence[neurons].sum()
    if total <= 0:
        return keep
    acc = 0.0
    for n in order:
        keep.add(int(n))
        acc += influence[n]
        if acc >= threshold * total:
            break
    return keep


def _keep_edges(A: np.ndarray, influence: np.ndarray, keep: set[int], threshold: float) -> list[tuple[int, int, float]]:
    """Edges among kept nodes, scored by the target node's influence times the edge's normalised
    share; the strongest that carry ``threshold`` of the total score."""
    An = _normalised(A)
    cand = [(t, s, influence[t] * An[t, s], A[t, s]) for t in keep for s in keep if A[t, s] != 0 and t != s]
    cand.sort(key=lambda e: -e[2])
    total = sum(e[2] for e in cand)
    out, acc = [], 0.0
    for t, s, score, w in cand:
        if total > 0 and acc >= threshold * total:
            break
        out.append((t, s, float(w)))
        acc += score
    return out


def merge_graphs(graphs: list[AttributionGraph]) -> tuple[list[dict], list[dict]]:
    """Corpus circuits: per (neuron -> neuron) and (neuron -> target token) pair over many prompts,
    the mean effect, the mean |effect| and how many prompts it appeared in."""
    acc: dict[tuple, list[float]] = {}
    for g in graphs:
        nodes = {n["id"]: n for n in g.nodes}
        for e in g.edges:
            s, t = nodes[e["source"]], nodes[e["target"]]
            if s["kind"] != "neuron" or t["kind"] == "token":
                continue
            dst = ("neuron", t["layer"], t["index"]) if t["kind"] == "neuron" else ("token", g.target_id)
            acc.setdefault(((s["layer"], s["index"]), dst), []).append(e["weight"])
    n = len(graphs)
    neuron_edges, token_edges = [], []
    for (src, dst), ws in acc.items():
        row = {"src_layer": src[0], "src_index": src[1], "mean": float(np.sum(ws) / n),
               "abs_mean": float(np.sum(np.abs(ws)) / n), "count": len(ws), "prompts": n}
        if dst[0] == "neuron":
            neuron_edges.append({**row, "dst_layer": dst[1], "dst_index": dst[2]})
        else:
            token_edges.append({**row, "token_id": dst[1]})
    return neuron_edges, token_edges


def time_forward_backward(model: LoadedModel, prompt: str) -> float:
    """Seconds for one plain forward + backward of the prompt (the bench's baseline)."""
    import time

    hf, _ = architecture(model)
    ids = torch.tensor([model.to_tokens(prompt, prepend_bos=True)])
    t0 = time.perf_counter()
    with torch.enable_grad():
        out = hf(ids).logits[0, -1].max()
        out.backward()
    hf.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


__all__ = ["AttributionError", "AttributionGraph", "attribute", "corpus_circuits", "corpus_prompts",
           "frozen_forward", "merge_graphs"]


def corpus_prompts(model: LoadedModel, n_prompts: int, prompt_len: int) -> list[str]:
    """The first ``n_prompts`` contexts of the default corpus, ``prompt_len`` tokens each (BOS
    included), as text: the prompts of ``corpus_circuits`` (fixed, so a run can resume)."""
    from .corpus import corpus_contexts

    ctx = corpus_contexts(model, "default", n_tokens=n_prompts * prompt_len, ctx_len=prompt_len)
    bos = model.bos_token_id
    rows = ctx.tokens[:n_prompts].tolist()
    return [model.tokenizer.decode(row[1:] if row and row[0] == bos else row) for row in rows]


async def stored_circuits(store: Any, name: str, *, n_prompts: int = 256, prompt_len: int = 16,
                          max_neurons: int = 64, k: int = 20) -> dict | None:
    """The summary of ``name``'s stored corpus circuits if they were made with these settings
    (None otherwise): ``neurograph circuits`` asks before it loads the model, so a finished run
    costs the demo's background pass a query, not a model load."""
    import json

    from neurograph.domain import model_key

    settings = {"prompts": n_prompts, "prompt_len": prompt_len, "max_neurons": max_neurons, "k": k}
    [state] = await store.query("model_circuits_state", model=model_key(name))
    if state["models"] == 0:
        raise AttributionError(f"no model {name!r} in the graph: build or import it before its circuits")
    if state["circuits"] != json.dumps(settings, sort_keys=True):
        return None
    return {"prompts": n_prompts, "neuron_edges": state["neuron_edges"], "token_edges": state["token_edges"],
            "skipped": "already computed with these settings"}


async def corpus_circuits(store: Any, model: LoadedModel, *, graph_model: str | None = None, n_prompts: int = 256,
                          prompt_len: int = 16, max_neurons: int = 64, k: int = 20, checkpoint: Any = None,
                          force: bool = False, progress: bool = True) -> dict:
    """Attribute ``n_prompts`` corpus prompts (each the model's own next-token prediction) and merge
    them into ATTRIBUTES_TO edges (the model's earlier ones replaced). Resumable: each graph is
    appended to ``checkpoint`` (a JSON-lines path) as it is made and not made again; a model whose
    stored circuits already cover ``n_prompts`` with these settings is left as it is (unless
    ``force``), so the demo's background pass costs nothing once done."""
    import json
    from pathlib import Path

    from neurograph.domain import CIRCUIT_TOPOLOGY_KINDS, CIRCUIT_TOPOLOGY_PREFIX, model_key
    from neurograph.progress import track
    from neurograph.topology import compute_topology
    from neurograph.traces import save_corpus_circuits

    name = graph_model or model.name
    settings = {"prompts": n_prompts, "prompt_len": prompt_len, "max_neurons": max_neurons, "k": k}
    stored = await stored_circuits(store, name, n_prompts=n_prompts, prompt_len=prompt_len, max_neurons=max_neurons,
                                   k=k)
    if stored is not None and not force:
        return stored
    path = Path(checkpoint) if checkpoint else None
    prompts = corpus_prompts(model, n_prompts, prompt_len)
    graphs: list[AttributionGraph] = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():  # a line per finished graph; a half-written last line (killed) is made again
            for line, prompt in zip(path.read_text().splitlines(), prompts):
                try:
                    g = AttributionGraph(**json.loads(line))
                except (ValueError, TypeError):
                    break
                if g.prompt != prompt or g.candidates > max_neurons:  # another run's settings: from here on anew
                    break
                graphs.append(g)
            path.write_text("".join(json.dumps(g.as_dict()) + "\n" for g in graphs))
    out = path.open("a") if path is not None else None
    try:
        for text in track(prompts[len(graphs):], "attribution graphs", total=len(prompts) - len(graphs),
                          enabled=progress):
            g = attribute(model, text, None, max_neurons=max_neurons, max_tokens=prompt_len + 8)
            graphs.append(g)
            if out is not None:
                out.write(json.dumps(g.as_dict()) + "\n")
                out.flush()
    finally:
        if out is not None:
            out.close()
    neuron_edges, token_edges = merge_graphs(graphs)
    await save_corpus_circuits(store, name, neuron_edges, token_edges, k=k)
    await store.query("set_model_props", key=model_key(name),
                      props={"circuits": json.dumps(settings, sort_keys=True)})
    if path is not None and path.exists():
        path.unlink()
    [state] = await store.query("model_circuits_state", model=model_key(name))  # edges as stored
    # roles and communities over the circuits, beside those over the weights (as
    # `neurograph topology MODEL --circuits`: SmolLM2's 256 prompts took 26 s)
    topo = await compute_topology(store, name, kinds=CIRCUIT_TOPOLOGY_KINDS, prefix=CIRCUIT_TOPOLOGY_PREFIX)
    return {"prompts": len(graphs), "neuron_edges": state["neuron_edges"], "token_edges": state["token_edges"],
            "topology": {x: topo[x] for x in ("nodes", "edges", "communities", "roles")}}
