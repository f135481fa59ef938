"""Errors a user can act on. Each message says what was wrong and where."""

from __future__ import annotations

import re


ADDRESS = re.compile(r"(unix:/)?(/[\w.@+-]+)+\.sock\b|(/[\w.@+-]+){3,}/?|\b(\d{1,3}\.){3}\d{1,3}:\d+\b|"
                     r"\blocalhost:\d+\b|\[[0-9a-fA-F:]+\]:\d+")


def without_addresses(message: str) -> str:
    """A message fit for a client: socket paths, data directories and host:port replaced by "…"
    (they are the server's business; the server log keeps the full message)."""
    return ADDRESS.sub("…", message)


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
