"""The execution context of NeuroGraph's schema: Strawberry's own, without a reference cycle.

    schema = strawberry.Schema(Query)
    schema.execution_context_class = AcyclicExecutionContext
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

from graphql import GraphQLResolveInfoHelpers
from graphql.pyutils import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


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
