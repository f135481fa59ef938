"""The GraphQL schema: root queries, the one mutation, and the limits every request passes.

    from neurograph.api.schema import schema
    print(schema.as_str())                  # the SDL checked into graphql/schema.graphql
    result = await schema.execute("{ models { name } }", context_value=Context(store, settings))
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Optional

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules, MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter,
)
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField
from strawberry.tools import merge_types

from ..domain import check_model_name, explanation_key, head_key, neuron_key, parse_key, parse_neuron_key
from ..errors import InvalidKey, NeuroGraphError, NotFound, QueryError, StoreUnavailable, without_addresses
from .cost import CostLimiter
from .execution_context import AcyclicExecutionContext
from .graph import MAX_NODES, neighborhood as fetch_neighborhood, path_strength, strongest_paths
from .circuits import CircuitQuery
from .live import LiveQuery
from .ids import decode_cursor, encode_cursor, from_global_id, to_global_id
from .types import (
    MAX_FIRST, PROP_DESCRIPTION, CypherResult, Explanation, ExplanationHit, GraphEdge, GraphNode, Head, Info,
    Model, Neuron, NeuronConnection, NeuronPageEdge, NeuronStat, Node, PageInfo, Path, SortDirection, Subgraph,
    Token, TokenSearchHit, check_first, stat_name,
)
from .validation_cache import ValidationCache

MAX_DEPTH = 3  # neighbourhood depth
# Units in a neighbourhood unless maxNodes says otherwise: a readable drawing, and an answer of
# ~100 KB; depth 2 of the demo's neurons at 3 per kind reaches ~900.
NODE_BUDGET = 150
MAX_HOPS = 6  # path length


@strawberry.enum
class SearchOrder(enum.Enum):
    LAYER = "layer"
    SCORE = "score"


@strawberry.input(description="Filters for `neurons`: a layer range, topology role/community, a stat range.")
class NeuronWhere:
    layer_min: Optional[int] = None
    layer_max: Optional[int] = None
    role: Optional[str] = None
    community: Optional[int] = None
    stat: NeuronStat = NeuronStat.INTEREST
    prop: Optional[str] = strawberry.field(default=None, description=PROP_DESCRIPTION)
    min: Optional[float] = None
    max: Optional[float] = None


@strawberry.input(description="Order for `neurons`: by (layer, index) when neither `stat` nor `prop` is set, "
                              "else by that property.")
class NeuronOrder:
    stat: Optional[NeuronStat] = None
    prop: Optional[str] = strawberry.field(default=None, description=PROP_DESCRIPTION)
    direction: SortDirection = SortDirection.DESC


# --- lookups -------------------------------------------------------------------------------


async def load_model(info: Info, name: str) -> Model:
    check_model_name(name)
    row = await info.context.loaders.model.load(name)
    if row is None:
        raise NotFound(f"unknown model {name!r}: see `models` for the models in this graph")
    return Model.of(row)


async def load_neuron(info: Info, key: str) -> Neuron:
    model, layer, index = parse_neuron_key(key)
    row = await info.context.loaders.neuron.load(key)
    if row is None:
        if await info.context.loaders.model.load(model) is None:
            raise NotFound(f"unknown model {model!r}: see `models` for the models in this graph")
        raise NotFound(f"no neuron {key!r}: model {model!r} has no neuron {index} in layer {layer}")
    return Neuron(row, full=True)


async def resolve_unit(info: Info, ref: str) -> tuple[str, dict]:
    """A neuron or head given by global id or by key; returns (label, props)."""
    try:
        label, key = from_global_id(ref)
    except InvalidKey:
        unit = parse_key(ref)
        if unit is None or unit.label not in ("Neuron", "Head"):
            raise
        label, key = unit.label, ref
    if label == "Neuron":
        return label, (await load_neuron(info, key))._p
    if label == "Head":
        row = await info.context.loaders.head.load(key)
        if row is None:
            raise NotFound(f"no attention head {key!r}")
        return label, row
    raise InvalidKey(f"{ref!r} is a {label}: give a neuron or head id")


def _selects_node_props(info: Info) -> bool:
    """Whether the query asks for the nodes' ``props`` (fragments: assumed so). Without them a
    neighbourhood's units need no properties beyond what their keys say: one round trip less."""
    for f in info.selected_fields:
        for sel in f.selections:
            if not isinstance(sel, SelectedField):
                return True
            if sel.name == "nodes" and any(not isinstance(x, SelectedField) or x.name == "props" for x in sel.selections):
                return True
    return False


def graph_node(key: str, p: dict) -> GraphNode:
    label = p.get("_label") or ("Head" if "head" in p else "Neuron")
    if label == "Head":
        title = f"L{p.get('layer')}H{p.get('head')}"
        index = p.get("head")
    else:
        title = f"L{p.get('layer')}/N{p.get('index')}"
        index = p.get("index")
    return GraphNode(id=strawberry.ID(to_global_id(label, key)), key=key, label=label, model=p.get("model"),
                     layer=p.get("layer"), index=index, title=title,
                     props={k: v for k, v in p.items() if not k.startswith("_")})


def graph_edge(e: dict, nodes: dict[str, dict] | None = None, ids: dict[str, str] | None = None) -> GraphEdge:
    """A drawable edge; with the subgraph's nodes (or their ids by key), it carries their global
    ids as well as keys."""
    if ids is not None:
        return GraphEdge(source=e["source"], target=e["target"], type=e["type"], kind=e.get("kind"),
                         weight=float(e["weight"]), source_id=ids.get(e["source"]), target_id=ids.get(e["target"]))

    def gid(key: str) -> strawberry.ID | None:
        p = (nodes or {}).get(key)
        if p is None:
            return None
        return strawberry.ID(to_global_id(p.get("_label") or ("Head" if "head" in p else "Neuron"), key))

    return GraphEdge(source=e["source"], target=e["target"], type=e["type"], kind=e.get("kind"),
                     weight=float(e["weight"]), source_id=gid(e["source"]), target_id=gid(e["target"]))


# --- root query ----------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="Every model in the graph.")
    async def models(self, info: Info) -> list[Model]:
        rows = await info.context.store.query("models")
        return [Model.of({**r["m"], "n_neurons": r["n_neurons"]}) for r in rows]

    @strawberry.field(description="One model by name; an error if the graph has no such model.")
    async def model(self, info: Info, name: str) -> Model:
        return await load_model(info, name)

    @strawberry.field(description="One neuron; an error if the model or the neuron is unknown.")
    async def neuron(self, info: Info, model: str, layer: int, index: int) -> Neuron:
        return await load_neuron(info, neuron_key(model, layer, index))

    @strawberry.field
    async def head(self, info: Info, model: str, layer: int, head: int) -> Head:
        key = head_key(model, layer, head)
        row = await info.context.loaders.head.load(key)
        if row is None:
            raise NotFound(f"no attention head {key!r}")
        return Head.of(row)

    @strawberry.field(description="Relay: any node by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node:
        label, key = from_global_id(id)
        loaders = info.context.loaders
        if label == "Neuron":
            return await load_neuron(info, key)
        if label == "Model":
            return await load_model(info, key)
        if label == "Head":
            row = await loaders.head.load(key)
        elif label == "Token":
            row = await loaders.token.load(key)
        else:
            row = await loaders.explanation.load(key)
        if row is None:
            raise NotFound(f"no {label} {key!r}")
        return {"Head": Head.of, "Token": Token.of, "Explanation": Explanation.of}[label](row)

    @strawberry.field(description="A page of a model's neurons. Keyset pagination: pass `after: endCursor`.")
    async def neurons(self, info: Info, model: str, layer: Optional[int] = None, where: Optional[NeuronWhere] = None,
                      order_by: Optional[NeuronOrder] = None, first: int = 20,
                      after: Optional[str] = None) -> NeuronConnection:
        check_first(first)
        m = await load_model(info, model)
        w = where or NeuronWhere()
        lo = layer if layer is not None else (w.layer_min if w.layer_min is not None else 0)
        hi = layer if layer is not None else (w.layer_max if w.layer_max is not None else 1 << 30)
        common = dict(model=m.name, layer_min=lo, layer_max=hi, role=w.role, community=w.community,
                      min=w.min, max=w.max, limit=first + 1)
        store = info.context.store
        where_stat = await stat_name(info, m.name, w.stat, w.prop)
        order_stat = await stat_name(info, m.name, order_by.stat, order_by.prop) if order_by else None
        if order_stat is None:
            al, ai = decode_cursor(after, 2) if after else (-1, -1)
            # The page starts in the cursor's layer and mostly ends there: read that layer first
            # (one layer's index range, not every later layer's), the later ones only if short.
            here = max(al, lo)
            rows = await store.query("neurons_page", stat=where_stat, after_layer=al, after_index=ai,
                                     **{**common, "layer_max": min(here, hi)})
            if len(rows) <= first and here < hi:
                rows += await store.query("neurons_page", stat=where_stat, after_layer=here, after_index=1 << 62,
                                          **{**common, "limit": first + 1 - len(rows)})
            items = [(encode_cursor(r["n"]["layer"], r["n"]["index"]), r["n"]) for r in rows]
        else:
            if w.min is not None or w.max is not None:
                if where_stat != order_stat:
                    raise InvalidKey("with orderBy.stat or orderBy.prop, a where min/max must use the same property")
            av, al, ai = decode_cursor(after, 3) if after else (None, -1, -1)
            rows = await store.query("neurons_page_by_stat", stat=order_stat,
                                     descending=order_by.direction is SortDirection.DESC,
                                     after_value=av, after_layer=al, after_index=ai, **common)
            items = [(encode_cursor(r["v"], r["n"]["layer"], r["n"]["index"]), r["n"]) for r in rows]
        page = items[:first]
        return NeuronConnection(
            edges=[NeuronPageEdge(cursor=c, node=Neuron(p)) for c, p in page],
            page_info=PageInfo(has_next_page=len(items) > first, has_previous_page=after is not None,
                               start_cursor=page[0][0] if page else None, end_cursor=page[-1][0] if page else None))

    @strawberry.field(description="The subgraph around a neuron or head, ready to draw (edges keep their direction).")
    async def neighborhood(
        self, info: Info, id: strawberry.ID, depth: int = 1,
        kinds: Annotated[Optional[list[str]], strawberry.argument(description="Edge kinds to follow.")] = None,
        min_weight: Optional[float] = None,
        per_node: Annotated[int, strawberry.argument(
            description="Edges followed per node: per kind and direction with perKind, else in all.")] = 10,
        per_kind: Annotated[bool, strawberry.argument(
            description="Rank each edge kind, in each direction, on its own (the default): a virtual weight of 12 "
                        "does not crowd out cosines and correlations, and inputs stay beside outputs. "
                        "false: the perNode strongest by |weight| whatever their kind.")] = True,
        max_nodes: Annotated[int, strawberry.argument(
            description=f"Node budget (at most {MAX_NODES}): past it the traversal stops and `truncated` is true. "
                        "It goes round the frontier, each unit's strongest edge before any unit's second, so a "
                        "deeper level is spread evenly rather than filled from its first units.")] = NODE_BUDGET,
    ) -> Subgraph:
        if not 0 <= depth <= MAX_DEPTH:
            raise InvalidKey(f"depth must be between 0 and {MAX_DEPTH}, got {depth}")
        check_first(per_node, "perNode", 50)
        check_first(max_nodes, "maxNodes", MAX_NODES)
        label, p = await resolve_unit(info, id)
        sub = await fetch_neighborhood(info.context.store, [{**p, "_label": label}], depth=depth, kinds=kinds,
                                       min_weight=min_weight, per_node=per_node, per_kind=per_kind,
                                       max_nodes=max_nodes, props=_selects_node_props(info))
        nodes = [graph_node(k, v) for k, v in sub.nodes.items()]
        ids = {n.key: n.id for n in nodes}
        return Subgraph(nodes=nodes, edges=[graph_edge(e, ids=ids) for e in sub.edges.values()], truncated=sub.truncated)

    @strawberry.field(description="The strongest weighted paths between two units (edges in either direction "
                                  "unless directed: true), strongest first.")
    async def paths(
        self, info: Info, from_: Annotated[strawberry.ID, strawberry.argument(name="from")], to: strawberry.ID,
        max_hops: int = 3, kinds: Optional[list[str]] = None, per_node: int = 10, first: int = 3,
        directed: bool = False,
    ) -> list[Path]:
        if not 1 <= max_hops <= MAX_HOPS:
            raise InvalidKey(f"maxHops must be between 1 and {MAX_HOPS}, got {max_hops}")
        check_first(per_node, "perNode", 50)
        check_first(first, "first", 20)
        la, a = await resolve_unit(info, from_)
        lb, b = await resolve_unit(info, to)
        sub, paths = await strongest_paths(info.context.store, {**a, "_label": la}, {**b, "_label": lb},
                                           max_hops=max_hops, kinds=kinds, per_node=per_node, first=first,
                                           directed=directed)
        out = []
        for p in paths:
            edges, strength = path_strength(sub, p)
            out.append(Path(nodes=[graph_node(k, sub.nodes[k]) for k in p], edges=[graph_edge(e, sub.nodes) for e in edges],
                            hops=len(p) - 1, strength=strength))
        return out

    @strawberry.field(description="Neurons whose N2G pattern has these tokens (activating / important / either). "
                                  "Tokens compare case-insensitively with their spaces: \" the\" and \"the\" are "
                                  "different tokens.")
    async def search_tokens(self, info: Info, model: str, activating: Optional[list[str]] = None,
                            important: Optional[list[str]] = None,
                            any: Optional[list[str]] = None,  # noqa: A002 - the GraphQL argument name
                            order_by: SearchOrder = SearchOrder.LAYER, first: int = 20,
                            offset: int = 0) -> list[TokenSearchHit]:
        from ..search import search_tokens

        check_first(first)
        await load_model(info, model)
        hits = await search_tokens(info.context.store, model, activating=activating or (),
                                   important=important or (), any_=any or (), order=order_by.value,
                                   limit=first, offset=offset, keep_spaces=True)
        keys = [h.get("key") or neuron_key(model, h["layer"], h["index"]) for h in hits]
        rows = await info.context.loaders.neuron.load_many(keys)
        return [TokenSearchHit(neuron=Neuron(r, full=True), score=h.get("score"), details=h)
                for h, r in zip(hits, rows) if r is not None]

    @strawberry.field(description="Full-text search over explanations (engine full-text index).")
    async def search_explanations(self, info: Info, query: str, model: Optional[str] = None,
                                  first: int = 20) -> list[ExplanationHit]:
        check_first(first)
        if model is not None:
            await load_model(info, model)
        if not query.strip():
            raise InvalidKey("query must not be empty")
        store = info.context.store
        rows = await store.query(f"search_explanations.{store.engine}", q=query, model=model, limit=first)
        return [ExplanationHit(explanation=Explanation.of(r["explanation"]), neuron=Neuron(r["neuron"], full=True),
                               score=float(r["score"])) for r in rows]

    @strawberry.field(description="Read-only Cypher for power users: only reading clauses and read-only "
                                 "procedures are accepted; runs on an isolated read replica; time-, row- and "
                                 "byte-limited.")
    async def cypher(self, info: Info, query: str, params: Optional[JSON] = None) -> CypherResult:
        if params is not None and not isinstance(params, dict):
            raise QueryError("params must be a JSON object")
        s = info.context.settings
        rows, truncated = await info.context.store.read_only(
            query, params or {}, timeout_ms=s.cypher_timeout_ms, max_rows=s.cypher_max_rows,
            max_bytes=s.cypher_max_bytes)
        columns = list(rows[0].keys()) if rows else []
        return CypherResult(columns=columns, rows=[[r.get(c) for c in columns] for r in rows], truncated=truncated)


# --- mutation ------------------------------------------------------------------------------


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Attach an explanation to a neuron. Needs the API key "
                                     "(header x-api-key) or, without one configured, a loopback client.")
    async def add_explanation(self, info: Info, model: str, layer: int, index: int, text: str,
                              source: str = "user", score: Optional[float] = None) -> Explanation:
        if not info.context.authorized:
            raise PermissionDenied("writing needs a valid x-api-key header")
        if not text.strip() or len(text) > 10_000:
            raise InvalidKey("text must be 1 to 10000 characters")
        n = await load_neuron(info, neuron_key(model, layer, index))
        key = explanation_key(model, layer, index, source, text)
        await info.context.store.write("upsert_explanations", [
            {"key": key, "neuron": n._p["key"], "source": source, "text": text, "score": score, "scores": {}}])
        return Explanation.of({"key": key, "source": source, "text": text, "score": score})


class PermissionDenied(NeuroGraphError, PermissionError):
    """A write without the API key."""


def internal(error: GraphQLError) -> bool:
    """An error of the server's, not of the request: masked in the answer, logged with its
    traceback. NeuroGraph's own errors say what was wrong with the request; so do graphql-core's
    request errors (no path: the variables did not fit their types, e.g. ``"three"`` for Int).
    A field that failed for any other reason (a stored value its type refuses, a bug) is internal."""
    original = error.original_error
    if original is None or isinstance(original, NeuroGraphError):
        return False
    return not (error.path is None and isinstance(original, GraphQLError))


def store_down(error: GraphQLError) -> bool:
    """The store could not be reached (its message names the engine and its address)."""
    original = error.original_error
    if isinstance(original, StoreUnavailable):
        return True
    return isinstance(original, ConnectionError) and not isinstance(original, NeuroGraphError)


class HideStoreAddress(MaskErrors):
    """Store outages keep their message ("FalkorDB is not reachable: Error 2 connecting to unix
    socket: …") without the store's address.

        HideStoreAddress()   # in the schema's extensions
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=store_down)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(message=without_addresses(error.message), nodes=error.nodes, source=error.source,
                            positions=error.positions, path=error.path, original_error=None)


class NeuroGraphSchema(strawberry.Schema):
    """Logs only internal errors (with their traceback); a user's bad id, refused query or
    badly typed variable is answered, not logged as a server fault."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        unexpected = [e for e in errors if internal(e)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(*, max_depth: int = 12, max_aliases: int = 30, max_tokens: int = 2000,
                 max_cost: float = 20_000) -> strawberry.Schema:
    """The schema with its limits; every argument is a per-request bound.

    Extensions are factories, so each request gets its own instances (they hold request
    state). The depth and alias rules are built once, so the validation cache, which is keyed
    by the rule classes, hits for every repeated document; parsing is cached the same way."""
    rules = [*QueryDepthLimiter(max_depth=max_depth).validation_rules,
             *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules]
    return NeuroGraphSchema(
        query=merge_types("Query", (Query, LiveQuery, CircuitQuery)), mutation=Mutation,
        types=[Neuron, Model, Head, Token, Explanation],
        execution_context_class=AcyclicExecutionContext,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: ParserCache(maxsize=256),
            lambda: AddValidationRules(rules),
            lambda: ValidationCache(maxsize=256),
            lambda: CostLimiter(max_cost=max_cost),  # after ValidationCache: it must not overwrite our error
            HideStoreAddress,
            lambda: MaskErrors(should_mask_error=internal, error_message="internal error: the server log has details"),
        ],
    )


schema = build_schema()


if __name__ == "__main__":  # python -m neurograph.api.schema > graphql/schema.graphql
    print(schema.as_str())
