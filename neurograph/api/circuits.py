"""Circuits in GraphQL: a prompt's attribution graph (computed by the model worker, stored on
request), the stored traces, and one trace. Merged corpus circuits are the ``attributes`` and
``attributedBy`` connections of ``Neuron`` (ATTRIBUTES_TO edges)."""

from __future__ import annotations

from typing import Optional

import strawberry

from ..domain import neuron_key
from ..errors import InvalidKey, NotFound
from ..traces import save_trace
from .live import _ask, _text
from .types import Info, Neuron


@strawberry.type(description="A node of an attribution graph: an input token, a neuron at a position, or the target logit.")
class TraceNode:
    id: str
    kind: str
    position: int
    layer: Optional[int]
    index: Optional[int]
    token: str
    token_id: int
    activation: Optional[float]
    influence: float = strawberry.field(description="total (direct and indirect) influence on the target, 0-1")
    model: strawberry.Private[str]

    @strawberry.field(description="The neuron of the graph this node is an instance of (neuron nodes).")
    async def neuron(self, info: Info) -> Optional[Neuron]:
        if self.kind != "neuron":
            return None
        row = await info.context.loaders.neuron.load(neuron_key(self.model, self.layer, self.index))
        return Neuron(row, full=True) if row is not None else None


@strawberry.type(description="A direct effect: activation x gradient of the target through the frozen residual stream.")
class TraceEdge:
    source: str
    target: str
    weight: float


@strawberry.type(description="A prompt's attribution graph over MLP neurons (see docs/attribution.md).")
class AttributionGraph:
    key: Optional[str] = strawberry.field(description="the stored trace's key (null when not saved)")
    model: str
    prompt: str
    tokens: list[str]
    target: str
    target_logit: float
    nodes: list[TraceNode]
    edges: list[TraceEdge]


@strawberry.type
class TraceSummary:
    key: str
    model: str
    prompt: str
    target: str
    target_logit: float
    tokens: list[str]


def _graph(g: dict, key: Optional[str]) -> AttributionGraph:
    model = g["model"]
    return AttributionGraph(
        key=key, model=model, prompt=g["prompt"], tokens=g["tokens"], target=g["target"],
        target_logit=g["target_logit"],
        nodes=[TraceNode(id=n["id"], kind=n["kind"], position=n["position"], layer=n["layer"], index=n["index"],
                         token=n["token"], token_id=n["token_id"], activation=n["activation"],
                         influence=n["influence"], model=model) for n in g["nodes"]],
        edges=[TraceEdge(source=e["source"], target=e["target"], weight=e["weight"]) for e in g["edges"]])


@strawberry.type
class CircuitQuery:
    @strawberry.field(description="The attribution graph of `prompt` for the logit of `target` (one token; the "
                                  "model's prediction when omitted) at its last position, pruned to the nodes "
                                  "and edges that carry most of the influence; `save` stores it as a Trace. "
                                  "Needs the model worker, and the API key when exposed.")
    async def attribute(self, info: Info, model: str, prompt: str, target: Optional[str] = None,
                        max_neurons: int = 200, save: bool = False) -> AttributionGraph:
        if not 10 <= max_neurons <= 500:
            raise InvalidKey("maxNeurons must be 10 to 500")
        g = await _ask(info, model, "attribute", prompt=_text(prompt, "prompt"), target=target,
                       max_neurons=max_neurons)
        key = await save_trace(info.context.store, g) if save else None
        return _graph(g, key)

    @strawberry.field(description="Stored attribution graphs of a model, newest first; with `neuron` (a key), "
                                  "those that use that neuron.")
    async def traces(self, info: Info, model: str, neuron: Optional[str] = None, first: int = 20) -> list[TraceSummary]:
        if not 1 <= first <= 200:
            raise InvalidKey("first must be 1 to 200")
        rows = await info.context.store.query("traces", model=model, neuron=neuron, limit=first)
        return [TraceSummary(key=r["t"]["key"], model=r["t"]["model"], prompt=r["t"]["prompt"], target=r["t"]["target"],
                             target_logit=r["t"]["target_logit"], tokens=r["t"]["tokens"]) for r in rows]

    @strawberry.field(description="One stored attribution graph.")
    async def trace(self, info: Info, key: str) -> AttributionGraph:
        rows = await info.context.store.query("trace_graph", key=key)
        [head] = await info.context.store.query("traces_by_key", key=key) or [None]
        if head is None:
            raise NotFound(f"no trace {key!r}: see `traces`")
        t = head["t"]
        prefix = key + "/"
        nodes = [{**r["node"], "id": r["node"]["key"][len(prefix):]} for r in rows]
        edges = [{"source": r["node"]["key"][len(prefix):], "target": e["target"][len(prefix):], "weight": e["weight"]}
                 for r in rows for e in r["effects"] if e is not None]
        return _graph({**t, "nodes": nodes, "edges": edges}, key)
