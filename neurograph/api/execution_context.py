"""The execution context of NeuroGraph's schema: Strawberry's own, without a reference cycle,
and with objects of plain fields completed in one step.

    schema = strawberry.Schema(Query)
    schema.execution_context_class = AcyclicExecutionContext
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Sequence

from graphql import (GraphQLBoolean, GraphQLFloat, GraphQLID, GraphQLObjectType, GraphQLResolveInfoHelpers,
                     GraphQLString, Undefined, get_nullable_type, is_leaf_type, is_non_null_type)
from graphql.pyutils import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


# Scalars whose output coercion returns a value of this exact type unchanged (a float if finite).
_AS_IS = {GraphQLString: str, GraphQLID: str, GraphQLFloat: float, GraphQLBoolean: bool}


class AcyclicExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context whose resolver helpers hold the executor weakly.

    graphql-core sets ``async_helpers`` (the documented helpers it hands to resolvers) to two
    of the executor's own bound methods: a cycle that keeps the whole request (context,
    DataLoaders, every row fetched) alive until the cyclic garbage collector runs, and under
    load its full collections cost milliseconds per request. The same helpers through a weak
    reference let reference counting free a finished request at once. Execution itself is
    graphql-core's, unchanged.

        schema = strawberry.Schema(Query)
        schema.execution_context_class = AcyclicExecutionContext
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = GraphQLResolveInfoHelpers(gather=_gather, track=_Track(weakref.ref(self)))
        self._plain: dict[tuple, tuple] = {}

    def collect_and_execute_subfields(self, return_type: GraphQLObjectType, field_details_list: Any, path: Any,
                                      result: Any, position_context: Any) -> Any:
        """An object whose selected fields are all plain (a stored attribute, a scalar or enum,
        no arguments, no resolver of its own) is completed here in one step: graphql-core's
        general path costs ~5 us per field, and a neighbourhood of 150 units and 450 edges has
        ~4,000 of them. Anything unusual (a null where the schema says non-null, a value the
        scalar refuses) takes the general path, which reports it as it always does."""
        plan = self._plan(return_type, field_details_list)
        if plan:
            out = _plain_object(plan, result)
            if out is not None:
                return out
        return super().collect_and_execute_subfields(return_type, field_details_list, path, result, position_context)

    def complete_iterable_value(self, item_type: Any, field_details_list: Any, info: Any, path: Any, items: Any,
                                position_context: Any) -> Any:
        """A list of plain objects (a neighbourhood's units and edges) in one loop: graphql-core
        takes six calls per item before it reaches the object (~4 us each, 600 items)."""
        obj = get_nullable_type(item_type)
        if (isinstance(obj, GraphQLObjectType) and obj.is_type_of is None and type(items) is list
                and self.get_stream_usage(field_details_list, path) is None):
            plan = self._plan(obj, field_details_list)
            if plan:
                out = []
                is_awaitable = self.is_awaitable
                for item in items:
                    done = None if item is None or is_awaitable(item) else _plain_object(plan, item)
                    if done is None:  # the general path completes (or reports) it
                        break
                    out.append(done)
                else:
                    return out
        return super().complete_iterable_value(item_type, field_details_list, info, path, items, position_context)

    def _plan(self, return_type: GraphQLObjectType, field_details_list: Any) -> tuple:
        """(response key, Strawberry field, leaf type, non-null) per selected field when all are
        plain, else (); memoized as graphql-core memoizes collect_subfields (list kept alive)."""
        memo = (return_type, id(field_details_list))
        hit = self._plain.get(memo)
        if hit is not None:
            return hit[1]
        grouped, new_defer_usages, _ = self.collect_subfields(return_type, field_details_list)
        plan: list[tuple] = []
        for key, details in ({} if new_defer_usages else grouped).items():
            node = details[0].node
            field_def = return_type.fields.get(node.name.value)
            sf = field_def.extensions.get("strawberry-definition") if field_def is not None else None
            leaf = get_nullable_type(field_def.type) if field_def is not None else None
            if (len(details) != 1 or node.arguments or node.directives or sf is None or field_def.args
                    or sf.base_resolver is not None or sf.permission_classes or sf.extensions
                    or getattr(field_def.resolve, "__name__", "") != "_get_basic_result" or not is_leaf_type(leaf)):
                plan = []
                break
            name = sf.python_name if sf.default_resolver is getattr else None  # else ask Strawberry's resolver
            plan.append((key, sf, name, leaf, is_non_null_type(field_def.type)))
        else:
            plan = plan if not new_defer_usages else []
        self._plain[memo] = (field_details_list, tuple(plan))
        return tuple(plan)


def _plain_object(plan: tuple, result: Any) -> dict[str, Any] | None:
    """``result``'s completed fields by ``plan`` (see ``_plan``), or None where the general path
    must decide (a null in a non-null field, a value its scalar does not pass through)."""
    out: dict[str, Any] = {}
    for key, field, name, leaf, non_null in plan:
        value = getattr(result, name) if name is not None else field.get_result(result, None, [], {})
        if value is None:
            if non_null:
                return None
            out[key] = None
            continue
        kind = _AS_IS.get(leaf)  # graphql-core's own scalars pass these through unchanged
        if kind is not None and type(value) is kind and (kind is not float or math.isfinite(value)):
            out[key] = value
            continue
        try:
            coerced = leaf.coerce_output_value(value)
        except Exception:  # noqa: BLE001 - the general path raises it again, where it belongs
            return None
        if coerced is Undefined or coerced is None:
            return None
        out[key] = coerced
    return out


def _gather(values: Sequence[Any]) -> Any:
    return gather_with_cancel(*values)  # what graphql-core's gather_async_work does


class _Track:
    """``executor.track_async_work`` through a weak reference to the executor."""

    __slots__ = ("executor",)

    def __init__(self, executor: weakref.ref) -> None:
        self.executor = executor

    def __call__(self, values: Sequence[Any]) -> None:
        ex = self.executor()
        if ex is not None:
            ex.track_async_work(values)
