"""Strawberry's validation cache keyed by the query text, not by the parsed document.

    schema = strawberry.Schema(Query, extensions=[lambda: ParserCache(), lambda: ValidationCache()])
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


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
