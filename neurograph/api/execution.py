"""A faster field path for graphql-core: plain attributes of leaf type are completed directly.

graphql-core runs every field through the same machinery: a resolve-info tuple, Strawberry's
resolver wrapper, then complete_value recursing through NonNull / List / leaf for the value and
again for every list item. A neuron page has ~330 fields, most of them plain attributes
(``weight``, ``kind``, ``key``, a list of activations), and that machinery was most of the
server's time per request.

``FastExecutionContext`` short-cuts one case only: a Strawberry *basic* field (no resolver, no
arguments, no field extensions: Strawberry itself resolves it with ``getattr``) whose type is a
built-in scalar or an enum, or a list of them. Its value is read and coerced with the type's own
``coerce_output_value``, exactly what the stock path computes. A basic field of object type
(an edge's ``node``, a connection's ``edges``) is read the same way and its sub-selection
executed directly, with the stock error handling. Anything unusual (a null where the type
forbids one, a value the scalar refuses, an object of another type, middleware installed) goes
the stock way, so results and error messages are the stock ones; tests/test_api_execution.py
compares both.
It also breaks graphql-core's executor reference cycle (see ``__init__``), shares the
collected sub-selections of a document without directives across requests (see
``collect_subfields``) and completes their leaf fields in the field loop itself (see
``execute_fields``), and the module keeps Strawberry's validation cache from hashing the whole
document on every request.

Both overrides follow graphql-core 3.3's executor; with any other graphql-core the schema
keeps Strawberry's own execution context (slower, same answers).

    schema = strawberry.Schema(Query)
    schema.execution_context_class = fast_execution_context(schema)   # once, after building it
"""

from __future__ import annotations

import inspect
import weakref
from collections import OrderedDict
from functools import partial
from typing import Any, Iterator, NamedTuple, Sequence

import graphql
from graphql import (
    GraphQLEnumType, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType, specified_scalar_types,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.types.base import StrawberryObjectDefinition

# The executor internals the overrides rely on: the 3.3 signature of execute_field and the
# async helpers. Checked once; anything else means the stock execution context.
SUPPORTED = graphql.version_info[:2] == (3, 3)
if SUPPORTED:
    from graphql import FragmentSpreadNode, GraphQLResolveInfoHelpers, Undefined
    from graphql.execution.collect_fields import collect_subfields
    from graphql.pyutils import Path, gather_with_cancel
    SUPPORTED = list(inspect.signature(StrawberryGraphQLCoreExecutionContext.execute_field).parameters) == [
        "self", "parent_type", "source", "field_details_list", "path", "position_context"]


class _Plan(NamedTuple):
    attr: str  # the Python attribute Strawberry's default resolver reads
    coerce: Any  # the leaf type's coerce_output_value
    non_null: bool  # the field's own type is NonNull
    is_list: bool
    items_non_null: bool  # list items are NonNull
    object_type: Any = None  # for a field of object type (or a list of them): that type
    return_type: Any = None  # the field's whole type and its items' (object fields only)
    item_type: Any = None


def _object_plan(attr: str, gql_type: Any, type_map: dict) -> _Plan | None:
    """A plan for a basic field whose type is an object type or a list of one, where that type
    checks values (if at all) with Strawberry's own is_type_of, which ignores its info."""
    non_null = isinstance(gql_type, GraphQLNonNull)
    t = gql_type.of_type if non_null else gql_type
    is_list = isinstance(t, GraphQLList)
    item_type = t.of_type if is_list else None
    items_non_null = isinstance(item_type, GraphQLNonNull)
    if is_list:
        t = item_type.of_type if items_non_null else item_type
    concrete = type_map.get(getattr(t, "name", None))
    if not isinstance(t, GraphQLObjectType) or concrete is None or concrete.implementation is not t:
        return None
    if getattr(concrete.definition, "is_type_of", None) is not None:  # the schema's own check: stock path
        return None
    return _Plan(attr, None, non_null, is_list, items_non_null, t, gql_type, item_type)


def _plan(attr: str, gql_type: Any) -> _Plan | None:
    non_null = isinstance(gql_type, GraphQLNonNull)
    t = gql_type.of_type if non_null else gql_type
    is_list = isinstance(t, GraphQLList)
    items_non_null = False
    if is_list:
        t = t.of_type
        items_non_null = isinstance(t, GraphQLNonNull)
        t = t.of_type if items_non_null else t
    # Built-in scalars and enums refuse values they cannot represent (a coroutine, an object);
    # a custom scalar (JSON) may pass anything through, so it keeps the stock path.
    builtin = isinstance(t, GraphQLScalarType) and specified_scalar_types.get(t.name) is t
    if not (builtin or isinstance(t, GraphQLEnumType)):
        return None
    return _Plan(attr, t.coerce_output_value, non_null, is_list, items_non_null)


def plans_for(schema: Any) -> dict[tuple[str, str], _Plan]:
    """(GraphQL type name, field name) -> plan, for every basic leaf or object field of a
    Strawberry schema."""
    if schema.config.default_resolver is not getattr:
        return {}  # another default resolver may do anything: keep the stock path everywhere
    plans: dict[tuple[str, str], _Plan] = {}
    for concrete in schema.schema_converter.type_map.values():
        definition, impl = concrete.definition, concrete.implementation
        if not isinstance(definition, StrawberryObjectDefinition) or not isinstance(impl, GraphQLObjectType):
            continue
        for field in definition.fields:
            if not field.is_basic_field or field.arguments:
                continue
            name = schema.config.name_converter.get_graphql_name(field)
            gql_field = impl.fields.get(name)
            if gql_field is None or gql_field.args:
                continue
            plan = _plan(field.python_name, gql_field.type) or _object_plan(
                field.python_name, gql_field.type, schema.schema_converter.type_map)
            if plan is not None:
                plans[(impl.name, name)] = plan
    return plans


_MISSING = object()


def _without_directives(operation: Any, fragments: dict[str, Any]) -> bool:
    """No directive (@skip, @include, @defer, @stream...) and no fragment arguments anywhere in
    the operation or its fragments: then which fields run depends on the document alone."""
    if operation.directives:
        return False
    stack = [operation.selection_set]
    for details in fragments.values():
        if details.definition.directives or getattr(details.definition, "variable_definitions", None):
            return False
        stack.append(details.definition.selection_set)
    while stack:
        for sel in stack.pop().selections:
            if sel.directives or (isinstance(sel, FragmentSpreadNode) and getattr(sel, "arguments", None)):
                return False
            if getattr(sel, "selection_set", None):
                stack.append(sel.selection_set)
    return True


_SHARED_MAX = 4096  # collected sub-selections kept across requests (per schema)


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the leaf-attribute short cut (see the module doc)."""

    plans: dict[tuple[str, str], _Plan] = {}  # set per schema by fast_execution_context
    # Per schema, set by fast_execution_context: (object type, field node ids) -> (the nodes,
    # kept alive so their ids stay theirs; what collect_subfields made of them), and whether
    # an operation is free of directives, by its id (the operation kept alive the same way).
    shared: OrderedDict[tuple, tuple[tuple, Any]] = OrderedDict()
    # id of a shared grouped field set -> per field (response key, field details, leaf plan or
    # None); an entry lives exactly as long as its shared collection (removed with it).
    leaves: dict[int, list[tuple[str, Any, _Plan | None]]] = {}
    directive_free: OrderedDict[int, tuple[Any, bool]] = OrderedDict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core keeps helpers on the executor that are its own bound methods: a cycle
        # that holds the whole request (context, loaders, every row fetched) until the cyclic
        # garbage collector runs, and under load its full collections cost milliseconds per
        # request. The same helpers through a weak reference let reference counting free a
        # finished request at once.
        self.async_helpers = GraphQLResolveInfoHelpers(gather=_gather, track=partial(_track, weakref.ref(self)))
        seen = self.directive_free.get(id(self.operation))
        if seen is None or seen[0] is not self.operation:
            seen = (self.operation, _without_directives(self.operation, self.fragments))
            self.directive_free[id(self.operation)] = seen
            while len(self.directive_free) > _SHARED_MAX:
                self.directive_free.popitem(last=False)
        self._share = seen[1]

    def collect_subfields(self, return_type: GraphQLObjectType, field_details_list: Any) -> Any:
        """graphql-core memoizes the sub-selections of a field per request, and a neuron page
        collects ~36 of them anew each time. Without directives they depend only on the
        document (the parser cache hands the same nodes to every request with the same text),
        so they are shared across requests, keyed by the identity of those nodes."""
        if not self._share:
            return super().collect_subfields(return_type, field_details_list)
        memo = self._relevant_sub_fields
        key = (return_type, id(field_details_list))
        hit = memo.get(key)
        if hit is not None:
            return hit[1]
        nodes = tuple(d.node for d in field_details_list)
        shared_key = (return_type, *map(id, nodes))
        shared = self.shared.get(shared_key)
        if shared is None:
            collected = collect_subfields(self.schema, self.fragments, self.variable_values, self.operation,
                                          return_type, field_details_list, self.hide_suggestions)
            shared = (nodes, collected)
            self.shared[shared_key] = shared
            grouped = collected.grouped_field_set
            self.leaves[id(grouped)] = [(name, details, _leaf(self.plans.get((return_type.name, name_of(details)))))
                                        for name, details in grouped.items()]
            while len(self.shared) > _SHARED_MAX:
                _, (_, evicted) = self.shared.popitem(last=False)
                self.leaves.pop(id(evicted.grouped_field_set), None)
        memo[key] = (field_details_list, shared[1])
        return shared[1]

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any, grouped_field_set: Any,
                       position_context: Any) -> Any:
        """graphql-core's execute_fields, where a shared sub-selection's leaf fields (see _plan)
        are completed in the loop itself: no path, no call through execute_field, no awaitable
        check for the ~300 plain values of a neuron page. Other fields go the usual way."""
        leaves = self.leaves.get(id(grouped_field_set))
        if leaves is None or (self.middleware_manager is not None and self.middleware_manager.middlewares):
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for name, details, leaf in leaves:
                if leaf is not None:
                    value = _complete(leaf, source_value)
                    if value is not _MISSING:
                        results[name] = value
                        continue
                result = self.execute_field(parent_type, source_value, details, Path(path, name, parent_type.name),
                                            position_context)
                if result is not Undefined:
                    results[name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:  # let the started siblings settle, as graphql-core does
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _gather_into(results, awaitable_fields)

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any,
                      position_context: Any) -> Any:
        plan = self.plans.get((parent_type.name, field_details_list[0].node.name.value))
        if plan is not None and (self.middleware_manager is None or not self.middleware_manager.middlewares):
            if plan.object_type is None:
                value = _complete(plan, source)
            else:
                value = self._complete_objects(plan, source, field_details_list, path, position_context)
            if value is not _MISSING:
                return value
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _complete_objects(self, plan: _Plan, source: Any, field_details_list: Any, path: Any,
                          position_context: Any) -> Any:
        """An object (or a list of objects) read from an attribute, its sub-selection executed
        as graphql-core's execute_field / complete_value would, errors handled the same way.
        _MISSING, before anything ran, when the stock path must decide."""
        value = getattr(source, plan.attr, _MISSING)
        if value is None:
            return _MISSING if plan.non_null else None
        object_type = plan.object_type
        is_type_of = object_type.is_type_of  # Strawberry's own (see _object_plan): info unused
        if not plan.is_list:
            if value is _MISSING or (is_type_of is not None and not is_type_of(value, None)):
                return _MISSING
            items = None
        else:
            if not isinstance(value, (list, tuple)) or not self._share:  # no @stream when no directives
                return _MISSING
            if None in value or (is_type_of is not None and not all(is_type_of(v, None) for v in value)):
                return _MISSING
            items = value
        execute = self.collect_and_execute_subfields
        is_awaitable = self.is_awaitable
        try:
            if items is None:
                completed = execute(object_type, field_details_list, path, value, position_context)
            else:
                completed, pending = [], []
                item_type = plan.item_type
                try:
                    for index, item in enumerate(items):
                        item_path = path.add_key(index, None)
                        try:
                            done = execute(object_type, field_details_list, item_path, item, position_context)
                        except Exception as raw_error:  # noqa: BLE001 - graphql-core's complete_list_item_value
                            self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                            done = None
                        if is_awaitable(done):
                            done = _await_field(self, done, item_type, field_details_list, item_path)
                            pending.append(index)
                        completed.append(done)
                except Exception:
                    if pending:  # let the started siblings settle, as graphql-core does
                        self.settle_in_background([completed[i] for i in pending])
                    raise
                if pending:
                    completed = _gather_into(completed, pending)
            if is_awaitable(completed):
                return _await_field(self, completed, plan.return_type, field_details_list, path)
            return completed
        except Exception as raw_error:  # noqa: BLE001 - graphql-core's execute_field
            self.handle_field_error(raw_error, plan.return_type, field_details_list, path)
            return None


def name_of(details: Any) -> str:
    return details[0].node.name.value


def _leaf(plan: _Plan | None) -> _Plan | None:
    return plan if plan is not None and plan.object_type is None else None


async def _gather_into(container: Any, pending: list) -> Any:
    """``container`` (a field dict or a list of items) with its awaitable entries at
    ``pending`` (keys or indices) awaited in place: what graphql-core's execute_fields and
    complete_list_value return when some values are awaitable."""
    if len(pending) == 1:
        container[pending[0]] = await container[pending[0]]
    else:
        for key, value in zip(pending, await gather_with_cancel(*(container[k] for k in pending)), strict=True):
            container[key] = value
    return container


async def _await_field(executor: Any, completed: Any, return_type: Any, field_details_list: Any, path: Any) -> Any:
    """An awaitable field (or list item) value, errors handled as graphql-core's execute_field
    and complete_list_item_value handle them."""
    try:
        return await completed
    except Exception as raw_error:  # noqa: BLE001
        executor.handle_field_error(raw_error, return_type, field_details_list, path)
        return None


def _gather(values: Sequence[Any]) -> Any:
    return gather_with_cancel(*values)  # what graphql-core's gather_async_work does


def _track(executor: weakref.ref, values: Sequence[Any]) -> None:
    ex = executor()
    if ex is not None:
        ex.track_async_work(values)


def fast_execution_context(schema: Any) -> type[StrawberryGraphQLCoreExecutionContext]:
    """The execution context class for this Strawberry schema (its plans are the schema's own);
    Strawberry's own where graphql-core is not the version the overrides follow."""
    if not SUPPORTED:
        return StrawberryGraphQLCoreExecutionContext
    return type("FastExecutionContext", (FastExecutionContext,),
                {"plans": plans_for(schema), "shared": OrderedDict(), "leaves": {}, "directive_free": OrderedDict()})


def _complete(plan: _Plan, source: Any) -> Any:
    """The completed value, or _MISSING when the stock path must decide (and word the error)."""
    try:
        value = getattr(source, plan.attr)
        if value is None:
            return _MISSING if plan.non_null else None
        coerce = plan.coerce
        if not plan.is_list:
            out = coerce(value)
            return _MISSING if out is None else out
        if not isinstance(value, (list, tuple)):
            return _MISSING
        out = [None if v is None else coerce(v) for v in value]
        if plan.items_non_null and None in out:
            return _MISSING
        return out
    except Exception:  # noqa: BLE001 - the stock path raises the located, worded error
        return _MISSING


class ValidationCache(SchemaExtension):
    """Strawberry's ValidationCache, keyed by the query text instead of the parsed document.

    Strawberry's LRU hashes the document, and graphql-core hashes an AST by walking all of it,
    on every request. The parser cache (ParserCache, before this extension) maps one text to
    one document, so the text names the same validation result; errors are cached the same way.

        schema = strawberry.Schema(Query, extensions=[lambda: ParserCache(), lambda: ValidationCache()])
    """

    _entries: OrderedDict[tuple, list] = OrderedDict()  # shared by every request

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query is None or ctx.graphql_document is None:  # a document given directly: no text to key on
            yield
            return
        key = (id(ctx.schema._schema), ctx.query, ctx.validation_rules)
        entries = self._entries
        errors = entries.get(key)
        if errors is None:
            errors = validate_document(ctx.schema._schema, ctx.graphql_document, ctx.validation_rules)
            entries[key] = errors
            while len(entries) > self.maxsize:
                entries.popitem(last=False)
        else:
            entries.move_to_end(key)
        ctx.pre_execution_errors = errors
        yield
