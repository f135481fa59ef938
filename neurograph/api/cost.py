"""Query cost limit: refuse an operation whose estimated result size exceeds a budget,
before anything runs.

The estimate multiplies down the selection tree: a field costs 1 plus its children's cost
times its fan-out, the fan-out being its ``first`` argument (or that argument's default),
times ``perNode ** depth`` for neighbourhoods. Variables are resolved, fragments followed.

    schema = strawberry.Schema(Query, extensions=[CostLimiter(max_cost=20_000)])
    # neurons(first: 100) { edges { node { outputs(first: 100) { edges { node {
    #   outputs(first: 100) { ... } } } } } } }  ->  "query cost 1030301 exceeds the budget 20000"
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Iterator

from graphql import (
    ArgumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError, GraphQLInterfaceType,
    GraphQLObjectType, GraphQLSchema, InlineFragmentNode, OperationDefinitionNode, SelectionSetNode,
    VariableNode, Visitor, get_named_type, value_from_ast, visit,
)
from strawberry.extensions import SchemaExtension

FANOUT_ARGS = ("first",)
COST_ARGS = (*FANOUT_ARGS, "perNode", "depth", "maxHops")  # every argument the estimate reads


class _Estimator:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def arg(self, node: FieldNode, field_def: Any, name: str) -> Any:
        for a in node.arguments or ():
            if a.name.value == name:
                arg_def = field_def.args.get(name) if field_def is not None else None
                if arg_def is None:
                    return None
                return value_from_ast(a.value, arg_def.type, self.variables)
        if field_def is not None and name in field_def.args:
            d = field_def.args[name].default_value
            return None if d is None or d.__class__.__name__ == "UndefinedType" else d
        return None

    def selection(self, sel: SelectionSetNode | None, parent: Any, seen: frozenset[str]) -> float:
        if sel is None:
            return 0.0
        total = 0.0
        for s in sel.selections:
            if isinstance(s, FieldNode):
                total += self.field(s, parent, seen)
            elif isinstance(s, InlineFragmentNode):
                t = self.schema.get_type(s.type_condition.name.value) if s.type_condition else parent
                total += self.selection(s.selection_set, t or parent, seen)
            elif isinstance(s, FragmentSpreadNode):
                name = s.name.value
                frag = self.fragments.get(name)
                if frag is None or name in seen:  # cycles are the validator's to report
                    continue
                t = self.schema.get_type(frag.type_condition.name.value) or parent
                total += self.selection(frag.selection_set, t, seen | {name})
        return total

    def field(self, node: FieldNode, parent: Any, seen: frozenset[str]) -> float:
        field_def = None
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            field_def = parent.fields.get(node.name.value)
        fanout = 1.0
        for name in FANOUT_ARGS:
            v = self.arg(node, field_def, name)
            if isinstance(v, (int, float)):
                fanout *= max(float(v), 1.0)
        per_node, depth = self.arg(node, field_def, "perNode"), self.arg(node, field_def, "depth")
        if isinstance(per_node, int) and isinstance(depth, int):
            # In floats: perNode ** depth with huge integers would build an enormous Python int
            # and hang the server before any limit applies (found by the fuzz test).
            try:
                fanout *= float(max(per_node, 1)) ** min(max(depth, 0), 1024)
            except OverflowError:
                fanout = math.inf
        max_hops = self.arg(node, field_def, "maxHops")
        if isinstance(max_hops, int):
            fanout *= max_hops
        child_type = get_named_type(field_def.type) if field_def is not None else None
        return 1.0 + fanout * self.selection(node.selection_set, child_type, seen)


def estimate_cost(schema: GraphQLSchema, document: Any, variables: dict[str, Any] | None = None,
                  operation_name: str | None = None) -> float:
    """The estimated cost of the operation that will run."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
    est = _Estimator(schema, fragments, variables or {})
    cost = 0.0
    for op in ops:
        root = {"query": schema.query_type, "mutation": schema.mutation_type,
                "subscription": schema.subscription_type}.get(op.operation.value)
        cost = max(cost, est.selection(op.selection_set, root, frozenset()))
    return cost


class _CostVariables(Visitor):
    """Collects the variables used inside the arguments the estimate reads."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        if node.name.value in COST_ARGS:
            visit(node.value, _VariableNames(self.names))


class _VariableNames(Visitor):
    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def cost_variables(document: Any) -> tuple[str, ...]:
    """The variables the estimate of ``document`` depends on (e.g. ``$first``), sorted."""
    v = _CostVariables()
    visit(document, v)
    return tuple(sorted(v.names))


class CostCache:
    """Estimates by (query text, operation, the values of the variables the estimate reads).

    The estimate walks the whole document (~1 ms for the neuron page); a client sends the same
    query again and again with other ids, and ids never enter the estimate, so it is done once."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._names: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._costs: OrderedDict[tuple, float] = OrderedDict()

    def cost(self, schema: GraphQLSchema, query: str, document: Any, variables: dict[str, Any] | None,
             operation_name: str | None) -> float:
        names = self._get(self._names, query)
        if names is None:
            names = self._put(self._names, query, cost_variables(document))
        variables = variables or {}
        try:
            key = (id(schema), query, operation_name, tuple((n, _frozen(variables.get(n, _ABSENT))) for n in names))
            hash(key)
        except TypeError:  # a value that cannot be a key: estimate without the cache
            return estimate_cost(schema, document, variables, operation_name)
        cost = self._get(self._costs, key)
        if cost is None:
            cost = self._put(self._costs, key, estimate_cost(schema, document, variables, operation_name))
        return cost

    @staticmethod
    def _get(entries: OrderedDict, key: Any) -> Any:
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
        return value

    def _put(self, entries: OrderedDict, key: Any, value: Any) -> Any:
        entries[key] = value
        while len(entries) > self.maxsize:
            entries.popitem(last=False)
        return value


_ABSENT = object()  # a variable not given at all (its default applies), apart from an explicit null


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a variable value (lists and objects included), typed so that
    1, 1.0 and True stay apart."""
    if isinstance(value, dict):
        return ("{}", tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("[]", tuple(_frozen(v) for v in value))
    if value is _ABSENT:
        return ("absent",)
    return (type(value).__name__, value)


_CACHE = CostCache()


class CostLimiter(SchemaExtension):
    """Refuse operations whose estimated cost exceeds ``max_cost`` with a clear GraphQL error.

        schema = strawberry.Schema(Query, extensions=[CostLimiter(max_cost=20_000)])
    """

    def __init__(self, max_cost: float = 20_000, cache: CostCache | None = _CACHE) -> None:
        self.max_cost = max_cost
        self.cache = cache

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        doc = ctx.graphql_document
        if doc is not None and not ctx.pre_execution_errors:  # None or [] (a validation cache hit)
            try:
                if self.cache is not None and ctx.query is not None:
                    cost = self.cache.cost(ctx.schema._schema, ctx.query, doc, ctx.variables, ctx.operation_name)
                else:
                    cost = estimate_cost(ctx.schema._schema, doc, ctx.variables, ctx.operation_name)
            except Exception:  # a malformed document: leave it to the validator's clearer error
                cost = 0.0
            if cost > self.max_cost:
                ctx.pre_execution_errors = [GraphQLError(
                    f"query cost {cost:.0f} exceeds the budget {self.max_cost:.0f}: "
                    "ask for fewer items (smaller `first`, `perNode`, `depth`) or less nesting")]
        yield
