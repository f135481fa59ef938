"""Attribution graphs in the store: per-prompt traces and corpus circuits (the computation is
``loaders/attribution.py``, in the model worker or a loader step; this module only writes and
reads, so the API can save a trace without torch).

    key = await save_trace(store, graph)          # graph: AttributionGraph.as_dict()
    rows = await store.query("traces", model="smollm2-135m", neuron=None, limit=20)
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .domain import neuron_key, token_key
from .errors import NotFound
from .store import Store


def trace_key(model: str, prompt: str, target_id: int) -> str:
    digest = hashlib.blake2b(f"{prompt}\0{target_id}".encode(), digest_size=8).hexdigest()
    return f"{model}/trace/{digest}"


async def save_trace(store: Store, graph: dict[str, Any], *, created: float | None = None) -> str:
    """Store one attribution graph (idempotent: the same prompt and target give the same key);
    ``created`` (default: now) is kept from the first time it was stored."""
    model = graph["model"]
    key = trace_key(model, graph["prompt"], graph["target_id"])
    if not await store.query("upsert_trace", key=key, model=model, prompt=graph["prompt"], target=graph["target"],
                             target_id=graph["target_id"], target_logit=graph["target_logit"],
                             tokens=graph["tokens"], created=time.time() if created is None else created):
        raise NotFound(f"no model {model!r} in the graph: build or import it before saving its traces")
    node_key = {n["id"]: f"{key}/{n['id']}" for n in graph["nodes"]}
    await store.write("upsert_trace_nodes", [
        {"trace": key, "key": node_key[n["id"]], "kind": n["kind"], "position": n["position"], "layer": n["layer"],
         "index": n["index"], "token_id": n["token_id"], "token": n["token"], "activation": n["activation"],
         "influence": n["influence"]} for n in graph["nodes"]])
    await store.write("upsert_trace_neuron_instances", [
        {"node": node_key[n["id"]], "neuron": neuron_key(model, n["layer"], n["index"])}
        for n in graph["nodes"] if n["kind"] == "neuron"])
    await store.write("upsert_trace_token_instances", [
        {"node": node_key[n["id"]], "token": token_key(model, n["token_id"])}
        for n in graph["nodes"] if n["kind"] != "neuron"])
    await store.write("upsert_trace_effects", [
        {"src": node_key[e["source"]], "dst": node_key[e["target"]], "weight": e["weight"]} for e in graph["edges"]])
    return key


async def save_corpus_circuits(store: Store, model: str, neuron_edges: list[dict], token_edges: list[dict],
                               *, k: int = 20) -> tuple[int, int]:
    """Merged effects as ATTRIBUTES_TO edges, the ``k`` strongest (by mean |effect|) per source
    neuron, as COMPOSES and CORRELATES keep their top k per neuron; the model's earlier
    ATTRIBUTES_TO edges are replaced."""
    def top(rows: list[dict]) -> list[dict]:
        by: dict[tuple, list[dict]] = {}
        for r in rows:
            by.setdefault((r["src_layer"], r["src_index"]), []).append(r)
        return [r for rs in by.values() for r in sorted(rs, key=lambda r: -r["abs_mean"])[:k]]

    await store.query("delete_attributes", model=model)
    n = await store.write("upsert_attributes", [
        {"src": neuron_key(model, r["src_layer"], r["src_index"]), "dst": neuron_key(model, r["dst_layer"], r["dst_index"]),
         "mean": r["mean"], "abs_mean": r["abs_mean"], "count": r["count"], "prompts": r["prompts"]}
        for r in top(neuron_edges)])
    t = await store.write("upsert_attributes_tokens", [
        {"src": neuron_key(model, r["src_layer"], r["src_index"]), "token": token_key(model, r["token_id"]),
         "mean": r["mean"], "abs_mean": r["abs_mean"], "count": r["count"], "prompts": r["prompts"]}
        for r in top(token_edges)])
    return n, t
