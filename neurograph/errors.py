"""Errors a user can act on. Each message says what was wrong and where."""

from __future__ import annotations


class NeuroGraphError(Exception):
    """Base class: every error NeuroGraph raises on purpose."""


class InvalidKey(NeuroGraphError, ValueError):
    """A key or id that does not name a unit of the graph."""


class NotFound(NeuroGraphError, LookupError):
    """A well-formed key whose unit is not in the graph."""


class StoreUnavailable(NeuroGraphError, ConnectionError):
    """No database reachable, bad URI or bad credentials."""


class QueryError(NeuroGraphError):
    """Invalid Cypher, or a statement refused (a write through a read-only path, a timeout)."""


class InputFileError(NeuroGraphError):
    """A malformed import file: the message names the file and the field."""

    def __init__(self, path: object, message: str, field: str | None = None) -> None:
        where = f"{path}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")
        self.path = path
        self.field = field
