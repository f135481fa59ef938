"""GraphQL object types: models, layers, neurons, heads, tokens, examples, explanations,
N2G patterns, weighted edge connections and drawable subgraphs.

Every type wraps the plain property dict the store returns (``Neuron(props)``); fields that
reach further into the graph go through the request's DataLoaders, so a page of N neurons
costs one round trip per field, not N. A field whose data is already here returns it as a
plain value, not a coroutine, so graphql-core completes it without scheduling anything.

    neuron = Neuron({"key": "gpt2/3/17", "model": "gpt2", "layer": 3, "index": 17, "kurt": 9.1}, full=True)
    neuron.layer, neuron.stats(info).kurt   # 3, 9.1
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import time
from typing import Annotated, Any, Callable, Generic, Optional, TypeVar

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField

from ..domain import CIRCUIT_TOPOLOGY_PREFIX
from ..errors import InvalidKey, NotFound
from .context import Context
from .dataloaders import EdgeKey, ExamplesKey
from .ids import decode_cursor, encode_cursor, to_global_id

Info = strawberry.Info[Context, None]

MAX_FIRST = 100  # the most items any one list or connection returns
T = TypeVar("T")


def check_first(first: int, name: str = "first", cap: int = MAX_FIRST) -> int:
    if first < 0 or first > cap:
        raise InvalidKey(f"{name} must be between 0 and {cap}, got {first}")
    return first


# Every connection (edges, tokens, heads, examples) pages alike: `first` items after the cursor
# `after`, totalCount for all of them, pageInfo.hasNextPage / endCursor for the next page.
FirstArg = Annotated[int, strawberry.argument(
    description=f"How many items, 0 to {MAX_FIRST}; for more, ask again with after: pageInfo.endCursor.")]
AfterArg = Annotated[Optional[str], strawberry.argument(
    description="Start after this cursor (the pageInfo.endCursor of the previous page, with the same "
                "other arguments); null for the first page.")]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


# --- enums ---------------------------------------------------------------------------------


@strawberry.enum(description="A per-neuron statistic stored as a neuron property (the value is its name).")
class NeuronStat(enum.Enum):
    INTEREST = "interest"
    KURT = "kurt"
    SKEW = "skew"
    MEAN = "mean"
    VAR = "var"
    MAX = "max"
    MIN = "min"
    FRAC_ACTIVE = "frac_active"
    N2G_FIRING_F1 = "n2g_firing_f1"
    DEGREE = "degree"
    STRENGTH = "strength"
    BETWEENNESS = "betweenness"
    PARTICIPATION = "participation"
    WITHIN_Z = "within_z"


@strawberry.enum
class SortDirection(enum.Enum):
    DESC = "desc"
    ASC = "asc"


@strawberry.enum(description="How a neuron's edges are ordered.")
class EdgeOrder(enum.Enum):
    WEIGHT = "weight"  # largest weight first
    WEIGHT_ASC = "asc"  # most negative first
    ABS_WEIGHT = "abs"  # largest |weight| first


@strawberry.enum
class ExampleKind(enum.Enum):
    MAX = "max"
    MIN = "min"
    RANDOM = "random"
    QUANTILE = "quantile"  # a uniform sample per interval of the activation range (Neuronpedia)


# --- Relay plumbing ------------------------------------------------------------------------


@strawberry.interface(description="Relay node: anything fetchable again by its global id with `node(id)`.")
class Node:
    id: strawberry.ID


@strawberry.type(description="Where a page of a connection ends: with hasNextPage, ask again with "
                               "after: endCursor for the next page.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: Optional[str]
    end_cursor: Optional[str]


NodeT = TypeVar("NodeT")
EdgeT = TypeVar("EdgeT")


@strawberry.type
class Edge(Generic[NodeT]):
    """A Relay edge: the node at the end and its cursor. Each node type's edge is a named
    subclass, so the SDL keeps its names:

        @strawberry.type(name="ExampleEdge")
        class ExampleEdge(Edge[Example]): ...
    """

    cursor: str
    node: NodeT


@strawberry.type
class WeightedEdge(Edge[NodeT]):
    """An edge of the graph as seen from one unit: its kind, weight and rank within the kind.

        NeuronEdge(cursor=c, node=Neuron(props), kind="virtual", weight=0.4, rank=0)
    """

    kind: Optional[str]
    weight: float
    rank: Optional[int]


@strawberry.type
class Connection(Generic[EdgeT]):
    """A page of edges, its page info and how many edges there are in all.

        @strawberry.type(name="TokenConnection")
        class TokenConnection(Connection[TokenEdge]): ...
    """

    edges: list[EdgeT]
    page_info: PageInfo
    total_count: int = strawberry.field(description="How many items the list holds in all pages together.")


def _position(after: str | None) -> int:
    """The position a cursor names (-1 for none: the page starts at the top)."""
    if not after:
        return -1
    (value,) = decode_cursor(after, 1)
    if not isinstance(value, int) or value < 0:
        raise InvalidKey(f"invalid cursor {after!r}: pass an endCursor from a previous page")
    return value


def _offset_after(after: str | None) -> int:
    return _position(after) + 1


# --- leaf types ----------------------------------------------------------------------------


@strawberry.type(description="Activation distribution moments and quantiles over the dataset.")
class NeuronStats:
    mean: Optional[float]
    var: Optional[float]
    skew: Optional[float]
    kurt: Optional[float]
    frac_active: Optional[float]
    max: Optional[float]
    min: Optional[float]
    quantiles: Optional[list[float]]
    quantile_levels: Optional[list[float]]

    @classmethod
    def of(cls, p: dict) -> "NeuronStats":
        # one vocabulary: every writer's names were mapped to these (domain.neuron_props)
        q, ql = p.get("quantiles"), p.get("quantile_levels")
        return cls(
            mean=_num(p.get("mean")), var=_num(p.get("var")), skew=_num(p.get("skew")), kurt=_num(p.get("kurt")),
            frac_active=_num(p.get("frac_active")), max=_num(p.get("max")), min=_num(p.get("min")),
            quantiles=[float(x) for x in q] if isinstance(q, list) else None,
            quantile_levels=[float(x) for x in ql] if isinstance(ql, list) else None,
        )


@strawberry.type(description="Activation histogram: len(edges) == len(counts) + 1.")
class Histogram:
    edges: list[float]
    counts: list[float]

    @classmethod
    def of(cls, p: dict) -> Optional["Histogram"]:
        edges, counts = p.get("hist_edges"), p.get("hist_counts")
        if not isinstance(edges, list) or not isinstance(counts, list):
            return None
        return cls(edges=[float(x) for x in edges], counts=[float(x) for x in counts])


@strawberry.type
class Example:
    key: str
    tokens: list[str]
    activations: list[float]
    max_activation: Optional[float]
    min_activation: Optional[float]
    pivot: Optional[int] = strawberry.field(description="Index of the max (or min) token in `tokens`.")
    rank: int
    data_index: Optional[int]
    source: Optional[str]
    bin: Optional[int] = strawberry.field(default=None, description=(
        "QUANTILE examples: the interval of (0, max] the context's max falls in, 0 the lowest."))
    bin_low: Optional[float] = strawberry.field(default=None, description="QUANTILE: the interval's lower bound.")
    bin_high: Optional[float] = strawberry.field(default=None, description="QUANTILE: the interval's upper bound.")
    bin_count: Optional[int] = strawberry.field(default=None, description=(
        "QUANTILE: how many dataset contexts have their max in the interval (the examples are a uniform "
        "sample of them)."))


ExampleEdge = Edge[Example]  # Strawberry names it so

@strawberry.type(name="ExampleConnection")
class ExampleConnection(Connection[ExampleEdge]):
    pass


@strawberry.type
class Explanation(Node):
    key: str
    source: Optional[str]
    text: str
    score: Optional[float]
    scores: JSON = strawberry.field(description="Every stored score (e.g. ev_correlation, rsquared).")

    @classmethod
    def of(cls, p: dict) -> "Explanation":
        extra = {k: v for k, v in p.items() if k not in ("key", "text", "source")}
        return cls(id=strawberry.ID(to_global_id("Explanation", p["key"])), key=p["key"],
                   source=p.get("source"), text=p.get("text") or "", score=_num(p.get("score")), scores=extra)


@strawberry.type
class PatternMatch:
    role: str
    token: str
    text: Optional[str]


@strawberry.type(description="One N2G pattern-graph node: a token at a depth before the activating one.")
class PatternNode:
    key: str
    token: Optional[str]
    depth: Optional[int]
    role: Optional[str]
    activation: Optional[float]
    is_end: Optional[bool]
    next: list[str]
    matches: list[PatternMatch]


@strawberry.type
class PatternEdge:
    source: str
    target: str


@strawberry.type(description="A neuron's Neuron2Graph pattern: nodes, edges and fit scores (n2g_* props).")
class Pattern:
    nodes: list[PatternNode]
    edges: list[PatternEdge]
    scores: JSON


@strawberry.type
class Topology:
    role: Optional[str]
    community: Optional[int]
    degree: Optional[float]
    strength: Optional[float]
    betweenness: Optional[float]
    participation: Optional[float] = strawberry.field(description="Spread of its strength over communities.")
    within_z: Optional[float] = strawberry.field(description="Within-community strength z-score.")

    @classmethod
    def of(cls, p: dict, prefix: str = "") -> "Topology":
        def get(name: str) -> Any:
            return p.get(prefix + name)

        return cls(role=get("role"), community=_int(get("community")), degree=_num(get("degree")),
                   strength=_num(get("strength")), betweenness=_num(get("betweenness")),
                   participation=_num(get("participation")), within_z=_num(get("within_z")))


@strawberry.type(description="One source of a neuron's imported values.")
class NeuronSource:
    source: str = strawberry.field(description="Importer and file, e.g. 'universal-neurons:universal.csv'.")
    values: JSON = strawberry.field(description="The values this source gave the neuron.")

    @staticmethod
    def of(p: dict) -> list["NeuronSource"]:
        out = []
        for src, raw in zip(p.get("sources") or [], p.get("source_values") or []):
            try:
                values = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError:
                values = {}
            out.append(NeuronSource(source=str(src), values=values))
        return out


# --- units ---------------------------------------------------------------------------------


@strawberry.type(description="A vocabulary token of a model.")
class Token(Node):
    # Plain attributes, not resolvers: Strawberry reads them with getattr (no resolver of
    # ours to call), and a page lists dozens of tokens.
    key: str
    model: str
    token_id: int
    _p: strawberry.Private[dict]

    def __init__(self, props: dict) -> None:
        """``props``: the token's properties, or just what its key says (text then loads on demand)."""
        self._p = props
        self.id = strawberry.ID(to_global_id("Token", props["key"]))
        self.key = props["key"]
        self.model = props.get("model", "")
        self.token_id = int(props.get("id", -1))

    @classmethod
    def of(cls, p: dict) -> "Token":
        return cls(p)

    @strawberry.field
    def text(self, info: Info) -> str:
        # A plain value when the text is here (the `tokens` field fetches a page's texts in one
        # batch); an awaitable only when it must be loaded, so the common case spawns no task.
        if "text" in self._p:
            return str(self._p["text"])
        return self._load_text(info)  # type: ignore[return-value]

    async def _load_text(self, info: Info) -> str:
        row = await info.context.loaders.token.load(self._p["key"])
        self._p = {**self._p, **(row or {})}
        return str(self._p.get("text", ""))


def _selects(info: Info, name: str) -> bool:
    """Whether a field called ``name`` is selected anywhere below this field (fragments
    included). Walks graphql-core's AST: ``info.selected_fields`` converts every argument too."""
    raw = info._raw_info
    seen: set[str] = set()
    return any(_selects_in(node.selection_set, name, raw.fragments, seen) for node in raw.field_nodes)


def _selects_in(selection_set: SelectionSetNode | None, name: str, fragments: dict, seen: set[str]) -> bool:
    # A plain function, not a closure calling itself: that would be a reference cycle holding
    # the request's resolve info (and with it the whole request) until the cyclic GC runs.
    for s in selection_set.selections if selection_set is not None else ():
        if isinstance(s, FieldNode):
            if s.name.value == name or _selects_in(s.selection_set, name, fragments, seen):
                return True
        elif isinstance(s, InlineFragmentNode):
            if _selects_in(s.selection_set, name, fragments, seen):
                return True
        elif isinstance(s, FragmentSpreadNode) and s.name.value not in seen:
            seen.add(s.name.value)
            fragment = fragments.get(s.name.value)
            if fragment is not None and _selects_in(fragment.selection_set, name, fragments, seen):
                return True
    return False


def _page(rows: list[dict], first: int, after: str | None) -> tuple[list[tuple[str, dict]], PageInfo]:
    """Slice an already sorted, capped edge list (top-k per unit, so offsets are cheap here)."""
    start = _offset_after(after)
    chosen = rows[start:start + first]
    cursors = [encode_cursor(start + i) for i in range(len(chosen))]
    info = PageInfo(has_next_page=start + first < len(rows), has_previous_page=start > 0,
                    start_cursor=cursors[0] if cursors else None, end_cursor=cursors[-1] if cursors else None)
    return list(zip(cursors, chosen)), info


def _edge_key(field: str, key: str, kinds: list[str] | None, min_weight: float | None, order: EdgeOrder) -> EdgeKey:
    return EdgeKey(field, key, tuple(sorted(kinds)) if kinds else None,
                   float(min_weight) if min_weight is not None else None, order.value)


def _edges_only(info: Info) -> bool:
    """Whether a connection is asked for its edges' kind, weight and node only (no totalCount,
    pageInfo, rank or fragments): then its first edges are all that is needed. Worked out once
    per request and field (a page of 50 neurons asks 50 times)."""
    memo = info.context.memo
    node = info._raw_info.field_nodes[0]
    hit = memo.get(("edges_only", id(node)))
    if hit is None:
        hit = memo[("edges_only", id(node))] = _selects_edges_only(info)
    return hit


def _selects_edges_only(info: Info) -> bool:
    for f in info.selected_fields:
        for sel in f.selections:
            if not isinstance(sel, SelectedField) or sel.name != "edges" \
                    or any(not isinstance(x, SelectedField) or x.name not in ("kind", "weight", "node", "cursor")
                           for x in sel.selections):
                return False
    return True


async def _neuron_edges(info: Info, field: str, key: str, kinds: list[str] | None, min_weight: float | None,
                        order: EdgeOrder, first: int, after: str | None) -> NeuronEdgeConnection:
    check_first(first)
    ek = _edge_key(field, key, kinds, min_weight, order)
    if after is None and _edges_only(info):  # nothing needs the rest: the lists may do
        ek = dataclasses.replace(ek, limit=first)
    rows = await info.context.loaders.edges.load(ek)
    page, pinfo = _page(rows, first, after)
    return NeuronEdgeConnection(
        edges=[NeuronEdge(cursor=c, node=Neuron(r["node"]), kind=r.get("kind"), weight=float(r["weight"]),
                          rank=r.get("rank")) for c, r in page],
        page_info=pinfo, total_count=len(rows))


KindsArg = Annotated[Optional[list[str]], strawberry.argument(
    description="Only these edge kinds (e.g. virtual, in_out, pearson, K, input).")]
MinWeightArg = Annotated[Optional[float], strawberry.argument(description="Only edges with |weight| >= minWeight.")]


@strawberry.type(description="An attention head.")
class Head(Node):
    key: str
    model: str
    layer: int
    head: int

    @classmethod
    def of(cls, p: dict) -> "Head":
        return cls(id=strawberry.ID(to_global_id("Head", p["key"])), key=p["key"], model=p.get("model", ""),
                   layer=int(p.get("layer", -1)), head=int(p.get("head", -1)))

    @strawberry.field(description="Neurons this head composes with (HEAD_COMPOSES).")
    async def neurons(self, info: Info, kinds: Optional[list[str]] = None, min_weight: Optional[float] = None,
                      order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                      after: AfterArg = None) -> HeadNeuronEdgeConnection:
        check_first(first)
        rows = await info.context.loaders.edges.load(_edge_key("head_neurons", self.key, kinds, min_weight, order_by))
        page, pinfo = _page(rows, first, after)
        return HeadNeuronEdgeConnection(
            edges=[HeadNeuronEdge(cursor=c, node=Neuron(r["node"]), kind=r.get("kind"), weight=float(r["weight"]),
                                  rank=r.get("rank"), outgoing=bool(r.get("outgoing"))) for c, r in page],
            page_info=pinfo, total_count=len(rows))


@strawberry.type(description="An MLP neuron with its statistics, examples, explanations and edges.")
class Neuron(Node):
    # Plain attributes, not resolvers: Strawberry reads them with getattr (no resolver of
    # ours to call), and a page lists dozens of neighbouring neurons.
    key: str
    model: str
    layer: int
    index: int
    _p: strawberry.Private[dict]
    _full: strawberry.Private[bool]

    def __init__(self, props: dict, full: bool = False) -> None:
        """``props``: every property (``full``) or the summary projection edge queries return."""
        self._p = props
        self._full = full
        self.id = strawberry.ID(to_global_id("Neuron", props["key"]))
        self.key = props["key"]
        self.model = props.get("model", "")
        self.layer = int(props.get("layer", -1))
        self.index = int(props.get("index", -1))

    async def all_props(self, info: Info) -> dict:
        """Every property, loaded (batched with the page's other neurons) when only a summary is here."""
        if not self._full:
            row = await info.context.loaders.neuron.load(self._p["key"])
            self._p = {**self._p, **(row or {})}
            self._full = True
        return self._p

    def _from_props(self, info: Info, make: Callable[[dict], T], name: str | None = None) -> T:
        """``make(props)`` now when the properties are here (``name`` among them, or all of
        them), else an awaitable of it that loads them first, batched with the page's others.
        Resolvers return the plain value in the common case, so graphql-core spawns no task."""
        if self._full or (name is not None and name in self._p):
            return make(self._p)

        async def later() -> T:
            return make(await self.all_props(info))

        return later()  # type: ignore[return-value]

    @strawberry.field(description="How interesting the harvest found this neuron (higher: more).")
    def interest(self, info: Info) -> Optional[float]:
        return self._from_props(info, lambda p: _num(p.get("interest")), "interest")

    @strawberry.field
    def stats(self, info: Info) -> NeuronStats:
        # a listing's summaries carry the stats (neurons_page.cypher): no load of every property
        stats = self._from_props(info, NeuronStats.of, "frac_active")
        if isinstance(stats, NeuronStats) and (stats.quantile_levels is not None or stats.quantiles is None):
            return stats
        return self._with_model_levels(info, stats)

    async def _with_model_levels(self, info: Info, stats: Any) -> NeuronStats:
        """A built model keeps the quantiles' levels once, on its Model node (the same for every
        neuron); imported and synthetic neurons carry their own."""
        stats = await stats if not isinstance(stats, NeuronStats) else stats
        if stats.quantile_levels is None and stats.quantiles is not None:
            levels = ((await info.context.loaders.model.load(self.model)) or {}).get("quantile_levels")
            if isinstance(levels, list) and len(levels) == len(stats.quantiles):
                stats.quantile_levels = [float(x) for x in levels]
        return stats

    @strawberry.field
    def histogram(self, info: Info) -> Optional[Histogram]:
        return self._from_props(info, Histogram.of)

    @strawberry.field(description="Role and community from graph analytics, with degree and centrality.")
    def topology(self, info: Info) -> Topology:
        return self._from_props(info, Topology.of)

    @strawberry.field
    def role(self, info: Info) -> Optional[str]:
        return self._from_props(info, lambda p: p.get("role"), "role")

    @strawberry.field
    def community(self, info: Info) -> Optional[int]:
        return self._from_props(info, lambda p: _int(p.get("community")), "community")

    @strawberry.field(description="Role and community in the corpus circuits (ATTRIBUTES_TO edges: what neurons do "
                                  "to each other on real prompts), with degree and centrality there.")
    def circuit_topology(self, info: Info) -> Topology:
        return self._from_props(info, lambda p: Topology.of(p, CIRCUIT_TOPOLOGY_PREFIX))

    @strawberry.field(description="Its role in the corpus circuits (see circuitTopology).")
    def circuit_role(self, info: Info) -> Optional[str]:
        return self._from_props(info, lambda p: p.get("circuit_role"))

    @strawberry.field(description="Its community in the corpus circuits (see circuitTopology).")
    def circuit_community(self, info: Info) -> Optional[int]:
        return self._from_props(info, lambda p: _int(p.get("circuit_community")))

    @strawberry.field(description="Every stored property of the neuron, as JSON.")
    async def props(self, info: Info) -> JSON:
        return dict(await self.all_props(info))

    @strawberry.field(description="Where its imported values came from: one entry per source file (or "
                                  "import), with the values that source gave. Two files that disagree both "
                                  "appear; the plain properties hold the last import's value.")
    def provenance(self, info: Info) -> list[NeuronSource]:
        return self._from_props(info, NeuronSource.of, "sources")

    @strawberry.field(description="Labels imported data gives it, e.g. 'feature:all_caps' (Universal Neurons' "
                                  "prediction_neurons.csv); the rows behind them are in provenance.")
    def labels(self, info: Info) -> list[str]:
        return self._from_props(info, lambda p: [str(x) for x in p.get("labels") or []], "labels")

    @strawberry.field(description="Dataset contexts it activates on, in rank order.")
    async def examples(self, info: Info, kind: ExampleKind = ExampleKind.MAX, first: FirstArg = 5,
                       after: AfterArg = None) -> ExampleConnection:
        check_first(first)
        after_rank = _position(after)
        loaders = info.context.loaders
        total, rows = await loaders.examples.load(ExamplesKey(self._p["key"], kind.value, after_rank, first + 1))
        edges = []
        for r in rows[:first]:
            x = r["example"]
            edges.append(ExampleEdge(cursor=encode_cursor(r["rank"]), node=Example(
                key=x["key"], tokens=[str(t) for t in x.get("tokens") or []],
                activations=[float(a) for a in r.get("activations") or []],
                max_activation=_num(r.get("max_activation")), min_activation=_num(r.get("min_activation")),
                pivot=r.get("pivot"), rank=int(r["rank"]), data_index=x.get("data_index"), source=x.get("source"),
                bin=r.get("bin"), bin_low=_num(r.get("bin_low")), bin_high=_num(r.get("bin_high")),
                bin_count=r.get("bin_count"))))
        info_ = PageInfo(has_next_page=len(rows) > first, has_previous_page=after is not None,
                         start_cursor=edges[0].cursor if edges else None,
                         end_cursor=edges[-1].cursor if edges else None)
        return ExampleConnection(edges=edges, page_info=info_, total_count=total)

    @strawberry.field
    async def explanations(self, info: Info) -> list[Explanation]:
        rows = await info.context.loaders.explanations.load(self._p["key"])
        return [Explanation.of(r) for r in rows]

    @strawberry.field(description="The N2G pattern graph, or null when none was fitted.")
    async def pattern(self, info: Info) -> Optional[Pattern]:
        rows = await info.context.loaders.pattern.load(self._p["key"])
        props = await self.all_props(info)
        scores = {k: v for k, v in props.items() if k.startswith("n2g_") and k not in ("n2g_graph", "n2g_dot")}
        if not rows and not scores:
            return None
        nodes, edges = [], []
        for r in sorted(rows, key=lambda r: (r["node"].get("depth") or 0, r["node"]["key"])):
            p = r["node"]
            nxt = [k for k in r.get("next") or [] if k]
            matches = [PatternMatch(role=m["role"], token=m["token"], text=m.get("text"))
                       for m in r.get("matches") or [] if m.get("token")]
            nodes.append(PatternNode(key=p["key"], token=p.get("token"), depth=p.get("depth"), role=p.get("role"),
                                     activation=_num(p.get("activation")), is_end=p.get("is_end"),
                                     next=nxt, matches=matches))
            edges.extend(PatternEdge(source=p["key"], target=k) for k in nxt)
        return Pattern(nodes=nodes, edges=edges, scores=scores)

    @strawberry.field(description="Upstream neurons writing into this one (weight-based COMPOSES).")
    async def inputs(self, info: Info, kinds: KindsArg = None, min_weight: MinWeightArg = None,
                     order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                     after: AfterArg = None) -> NeuronEdgeConnection:
        return await _neuron_edges(info, "inputs", self._p["key"], kinds, min_weight, order_by, first, after)

    @strawberry.field(description="Downstream neurons this one writes into (weight-based COMPOSES).")
    async def outputs(self, info: Info, kinds: KindsArg = None, min_weight: MinWeightArg = None,
                      order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                      after: AfterArg = None) -> NeuronEdgeConnection:
        return await _neuron_edges(info, "outputs", self._p["key"], kinds, min_weight, order_by, first, after)

    @strawberry.field(description="Neurons with correlated activations (CORRELATES, Pearson).")
    async def correlated(self, info: Info, kinds: KindsArg = None, min_weight: MinWeightArg = None,
                         order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                         after: AfterArg = None) -> NeuronEdgeConnection:
        return await _neuron_edges(info, "correlated", self._p["key"], kinds, min_weight, order_by, first, after)

    @strawberry.field(description="Neurons this one drives in attribution graphs merged over a corpus "
                                  "(ATTRIBUTES_TO: mean direct effect over the prompts; `neurograph circuits`).")
    async def attributes(self, info: Info, min_weight: MinWeightArg = None,
                         order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                         after: AfterArg = None) -> NeuronEdgeConnection:
        return await _neuron_edges(info, "attributes", self._p["key"], None, min_weight, order_by, first, after)

    @strawberry.field(description="Neurons driving this one in attribution graphs merged over a corpus.")
    async def attributed_by(self, info: Info, min_weight: MinWeightArg = None,
                            order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                            after: AfterArg = None) -> NeuronEdgeConnection:
        return await _neuron_edges(info, "attributed_by", self._p["key"], None, min_weight, order_by, first, after)

    @strawberry.field(description="Neurons with overlapping N2G token sets (SIMILAR).")
    async def similar(self, info: Info, kinds: KindsArg = None, min_weight: MinWeightArg = None,
                      order_by: EdgeOrder = EdgeOrder.WEIGHT, first: FirstArg = 10,
                      after: AfterArg = None) -> NeuronEdgeConnection:
        return await _neuron_edges(info, "similar", self._p["key"], kinds, min_weight, order_by, first, after)

    @strawberry.field(description="Attention heads it composes with (HEAD_COMPOSES: Q, K, V out; O in).")
    async def heads(self, info: Info, kinds: KindsArg = None, min_weight: MinWeightArg = None,
                    order_by: EdgeOrder = EdgeOrder.ABS_WEIGHT, first: FirstArg = 10,
                    after: AfterArg = None) -> HeadEdgeConnection:
        check_first(first)
        rows = await info.context.loaders.edges.load(
            _edge_key("heads", self._p["key"], kinds, min_weight, order_by))
        page, pinfo = _page(rows, first, after)
        return HeadEdgeConnection(
            edges=[HeadEdge(cursor=c, node=Head.of(r["node"]), kind=r.get("kind"), weight=float(r["weight"]),
                            rank=r.get("rank"), outgoing=bool(r.get("outgoing"))) for c, r in page],
            page_info=pinfo, total_count=len(rows))

    @strawberry.field(description="Tokens tied to it (TOKEN_EFFECT kinds: input, output, activation).")
    async def tokens(self, info: Info, kinds: KindsArg = None, min_weight: MinWeightArg = None,
                     order_by: EdgeOrder = EdgeOrder.WEIGHT, first: FirstArg = 10,
                     after: AfterArg = None) -> TokenConnection:
        check_first(first)
        rows = await info.context.loaders.edges.load(
            _edge_key("tokens", self._p["key"], kinds, min_weight, order_by))
        page, pinfo = _page(rows, first, after)
        if page and _selects(info, "text"):
            # The texts of every token on the page in one batch (shared with the other token
            # fields of this request), instead of one awaited load per token.
            found = await info.context.loaders.token.load_many([r["node"]["key"] for _, r in page])
            page = [(c, {**r, "node": {**r["node"], **(t or {"text": ""})}}) for (c, r), t in zip(page, found)]
        return TokenConnection(
            edges=[TokenEdge(cursor=c, node=Token.of(r["node"]), kind=r.get("kind"), weight=float(r["weight"]),
                             rank=r.get("rank"), count=_num(r.get("count"))) for c, r in page],
            page_info=pinfo, total_count=len(rows))


@strawberry.type(name="TokenEdge")
class TokenEdge(WeightedEdge[Token]):
    count: Optional[float]


@strawberry.type(name="TokenConnection")
class TokenConnection(Connection[TokenEdge]):
    pass


@strawberry.type(name="NeuronEdge")
class NeuronEdge(WeightedEdge[Neuron]):
    """A weighted edge to another neuron, as seen from this one."""


@strawberry.type(name="NeuronEdgeConnection")
class NeuronEdgeConnection(Connection[NeuronEdge]):
    total_count: int = strawberry.field(description="Edges matching the filters.")


@strawberry.type(name="HeadEdge")
class HeadEdge(WeightedEdge[Head]):
    outgoing: bool = strawberry.field(description="True: neuron → head (Q, K, V); false: head → neuron (O).")


HeadEdgeConnection = Connection[HeadEdge]  # Strawberry names it so

@strawberry.type(name="HeadNeuronEdge")
class HeadNeuronEdge(WeightedEdge[Neuron]):
    outgoing: bool = strawberry.field(description="True: head → neuron (O); false: neuron → head (Q, K, V).")


HeadNeuronEdgeConnection = Connection[HeadNeuronEdge]

@strawberry.type(name="NeuronPageEdge")
class NeuronPageEdge(Edge[Neuron]):
    """A neuron in a page of ``neurons``, with its keyset cursor."""


@strawberry.type(description="A page of neurons with keyset cursors.")
class NeuronConnection:
    edges: list[NeuronPageEdge]
    page_info: PageInfo


# Integer properties that identify a neuron or a category, not a statistic to rank by.
NOT_STATS = frozenset({"layer", "index", "community"})
_PROP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

PROP_DESCRIPTION = ("Any numeric neuron property listed by `Model.availableStats` (e.g. an imported column); "
                    "overrides the built-in stat.")


async def check_prop(info: Info, model: str, prop: str) -> str:
    """``prop`` if the model's neurons carry it as a number, else a clear error (before any sort)."""
    if not _PROP_NAME.match(prop) or prop in NOT_STATS:
        raise InvalidKey(f"invalid neuron property {prop!r}: see Model.availableStats for the sortable ones")
    rows = await info.context.store.query("neuron_prop_sample", model=model, prop=prop)
    if not rows:
        raise NotFound(f"no neuron of model {model!r} has the property {prop!r}: see Model.availableStats")
    v = rows[0]["v"]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidKey(f"neuron property {prop!r} is a {type(v).__name__}, not a number: "
                         "see Model.availableStats for the sortable ones")
    return prop


async def stat_name(info: Info, model: str, stat: Optional[NeuronStat], prop: Optional[str]) -> Optional[str]:
    """The property to rank by: a checked ``prop`` when given, else the built-in stat's name."""
    if prop is not None:
        return await check_prop(info, model, prop)
    return stat.value if stat is not None else None


async def interesting(info: Info, model: str, layer: int | None, by: NeuronStat, direction: SortDirection,
                      first: int, prop: Optional[str] = None) -> list[Neuron]:
    check_first(first)
    stat = await stat_name(info, model, by, prop)
    rows = await info.context.store.query("interesting_neurons", model=model, layer=layer, stat=stat,
                                          descending=direction is SortDirection.DESC, limit=first)
    return [Neuron(r["n"]) for r in rows]


@strawberry.type(description="A numeric neuron property stored for a model: a built-in statistic or an "
                             "imported column (Universal Neurons, Neuroscope...).")
class StatInfo:
    name: str = strawberry.field(description="The property name: pass it as `prop` to rank or filter neurons.")
    stat: Optional[NeuronStat] = strawberry.field(
        description="The built-in statistic of this name, or null for an imported column.")
    count: int = strawberry.field(description="How many of the model's neurons have it.")
    min: float
    max: float


@strawberry.type
class Layer:
    model: str
    layer: int
    n_neurons: Optional[int]

    @strawberry.field(description="The layer's neurons with the highest (or lowest) value of a stat.")
    async def interesting(self, info: Info, by: NeuronStat = NeuronStat.INTEREST,
                          direction: SortDirection = SortDirection.DESC, first: int = 10,
                          prop: Annotated[Optional[str], strawberry.argument(description=PROP_DESCRIPTION)] = None,
                          ) -> list[Neuron]:
        return await interesting(info, self.model, self.layer, by, direction, first, prop)


SWEEP_SILENT_S = 3600  # an N2G sweep not heard of for this long is not under way


@strawberry.type(description="Neurons with an N2G pattern graph (done) of all the model's neurons (total).")
class N2GCoverage:
    done: int
    total: int
    sweep_blocks_done: int = strawberry.field(
        description="Blocks of contexts done by the N2G sweeps under way (summed over their shards): a sweep "
                    "fits every neuron at once and stores most of them near its end.")
    sweep_blocks: int = strawberry.field(description="Blocks of contexts of the N2G sweeps under way (0: none).")


@strawberry.type(description="A transformer model and what the graph records about it.")
class Model(Node):
    name: str
    n_layers: Optional[int]
    d_mlp: Optional[int]
    d_model: Optional[int]
    n_heads: Optional[int]
    d_vocab: Optional[int]
    act_fn: Optional[str]
    source: Optional[str]
    dataset: Optional[str]
    n_tokens: Optional[int]
    neuron_count: int
    metadata: JSON = strawberry.field(description="Every stored property of the model.")

    @classmethod
    def of(cls, p: dict) -> "Model":
        return cls(id=strawberry.ID(to_global_id("Model", p["key"])), name=p.get("name") or p["key"],
                   n_layers=p.get("n_layers"), d_mlp=p.get("d_mlp"), d_model=p.get("d_model"),
                   n_heads=p.get("n_heads"), d_vocab=p.get("d_vocab"), act_fn=p.get("act_fn"),
                   source=p.get("source"), dataset=p.get("dataset"), n_tokens=p.get("n_tokens"),
                   neuron_count=int(p.get("n_neurons") or 0),
                   metadata={k: v for k, v in p.items() if k != "n_neurons"})

    @strawberry.field
    async def layers(self, info: Info) -> list[Layer]:
        rows = await info.context.store.query("model_layers", model=self.name)
        return [Layer(model=self.name, layer=int(r["l"]["layer"]), n_neurons=r["l"].get("n_neurons")) for r in rows]

    @strawberry.field(description="The model's neurons with the highest (or lowest) value of a stat.")
    async def interesting(self, info: Info, by: NeuronStat = NeuronStat.INTEREST,
                          direction: SortDirection = SortDirection.DESC, first: int = 10,
                          layer: Optional[int] = None,
                          prop: Annotated[Optional[str], strawberry.argument(description=PROP_DESCRIPTION)] = None,
                          ) -> list[Neuron]:
        return await interesting(info, self.name, layer, by, direction, first, prop)

    @strawberry.field(description="Whether any of its neurons has an explanation (what searchExplanations "
                                  "can find for it).")
    async def has_explanations(self, info: Info) -> bool:
        return bool(await info.context.store.query("rest_model_has_explanations", prefix=f"{self.name}/"))

    @strawberry.field(description="How many of its neurons have an N2G pattern graph, of all its neurons "
                                  "(a background pass fills it in, most interesting neurons first).")
    async def n2g_coverage(self, info: Info) -> N2GCoverage:
        rows = await info.context.store.query("model_n2g_coverage", model=self.name)
        r = rows[0] if rows else {"done": 0, "total": 0}
        # The sweeps' [blocks done, blocks, when] (loaders.n2g.storage; a block takes minutes): a
        # finished one, or one not heard of for an hour (stopped, or left for another), no longer counts.
        now = time.time()
        under_way = [v for k, v in self.metadata.items() if k.startswith("n2g_sweep_") and isinstance(v, list)
                     and len(v) == 3 and v[0] < v[1] and now - v[2] < SWEEP_SILENT_S]
        return N2GCoverage(done=int(r["done"] or 0), total=int(r["total"] or 0),
                           sweep_blocks_done=sum(int(v[0]) for v in under_way),
                           sweep_blocks=sum(int(v[1]) for v in under_way))

    @strawberry.field(description="Its attention heads (of one layer when given), in (layer, head) order.")
    async def heads(self, info: Info, layer: Optional[int] = None) -> list[Head]:
        rows = await info.context.store.query("model_heads", model=self.name, layer=layer)
        return [Head.of(r["h"]) for r in rows]

    @strawberry.field(description="The numeric properties its neurons carry, built-in and imported, with how "
                                  "many neurons have each and the range: what `prop` can rank or filter by.")
    async def available_stats(self, info: Info) -> list[StatInfo]:
        store = info.context.store
        rows = await store.query(f"neuron_numeric_props.{store.engine}", model=self.name)
        builtin = {s.value: s for s in NeuronStat}
        return [StatInfo(name=r["name"], stat=builtin.get(r["name"]), count=int(r["count"]),
                         min=float(r["min"]), max=float(r["max"]))
                for r in rows if r["name"] not in NOT_STATS]


# --- subgraphs -----------------------------------------------------------------------------


@strawberry.type(description="A node of a drawable subgraph (neuron or head).")
class GraphNode:
    id: strawberry.ID
    key: str
    label: str
    model: Optional[str]
    layer: Optional[int]
    index: Optional[int] = strawberry.field(description="Neuron index, or head number for heads.")
    title: str
    props: JSON


@strawberry.type(description="A drawable edge: source and target are node keys, sourceId and targetId the "
                              "same nodes' ids (GraphNode.id), to link them without a lookup.")
class GraphEdge:
    source: str
    target: str
    type: str
    kind: Optional[str]
    weight: float
    source_id: Optional[strawberry.ID] = None
    target_id: Optional[strawberry.ID] = None


@strawberry.type
class Subgraph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool = strawberry.field(description="True when the node budget cut the traversal short.")


@strawberry.type(description="One weighted path; strength is the product of |weight| / max |weight| along it.")
class Path:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    hops: int
    strength: float


@strawberry.type
class CypherResult:
    columns: list[str]
    rows: JSON = strawberry.field(description="A list of rows, each a list of JSON values in column order.")
    truncated: bool


@strawberry.type
class TokenSearchHit:
    neuron: Neuron
    score: Optional[float]
    details: JSON


@strawberry.type
class ExplanationHit:
    explanation: Explanation
    neuron: Neuron
    score: float
