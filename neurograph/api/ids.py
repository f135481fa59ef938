"""Relay global ids: opaque, URL-safe strings naming one node of the graph.

    >>> to_global_id("Neuron", "gpt2/3/17")
    'TmV1cm9uOmdwdDIvMy8xNw'
    >>> from_global_id("TmV1cm9uOmdwdDIvMy8xNw")
    ('Neuron', 'gpt2/3/17')
"""

from __future__ import annotations

import base64
import binascii

from ..errors import InvalidKey

NODE_TYPES = ("Model", "Neuron", "Head", "Token", "Explanation")


def to_global_id(type_name: str, key: str) -> str:
    raw = f"{type_name}:{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def from_global_id(gid: str) -> tuple[str, str]:
    """Decode an id; the key is checked by whoever looks it up."""
    try:
        pad = "=" * (-len(gid) % 4)
        type_name, _, key = base64.urlsafe_b64decode(gid + pad).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidKey(f"not a NeuroGraph id: {gid!r}") from None
    if type_name not in NODE_TYPES or not key:
        raise InvalidKey(f"not a NeuroGraph id: {gid!r} (decodes to no known node type)")
    return type_name, key


def encode_cursor(*parts: object) -> str:
    """A keyset cursor: the sort values of the last row seen, opaque to clients."""
    raw = "\x1f".join(repr(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[object]:
    import ast

    try:
        pad = "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(cursor + pad).decode().split("\x1f")
        values = [ast.literal_eval(p) for p in parts]
    except (binascii.Error, UnicodeDecodeError, ValueError, SyntaxError):
        raise InvalidKey(f"invalid cursor {cursor!r}: pass an endCursor from a previous page") from None
    if len(values) != n or not all(v is None or isinstance(v, (int, float, str)) for v in values):
        raise InvalidKey(f"invalid cursor {cursor!r}: pass an endCursor from a previous page")
    return values
