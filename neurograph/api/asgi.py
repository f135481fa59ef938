"""A response an inner ASGI app sends, kept: the middlewares that look at answers (the answer
cache, GraphQL over HTTP) pass one of these as the app's ``send``."""

from __future__ import annotations

from starlette.types import Message, Send


class Captured:
    """Status (0 until the response starts), headers and body of the response sent through it;
    with ``forward``, every message also goes on to that ``send`` as it comes.

        >>> import asyncio
        >>> c = Captured()
        >>> asyncio.run(c({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"a/b")]}))
        >>> asyncio.run(c({"type": "http.response.body", "body": b"hi"}))
        >>> c.status, c.header(b"content-type"), c.body
        (201, b'a/b', b'hi')
    """

    def __init__(self, forward: Send | None = None) -> None:
        self.forward = forward
        self.status = 0  # until the response starts
        self.headers: list[tuple[bytes, bytes]] = []
        self._parts: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers") or [])
        elif message["type"] == "http.response.body":
            self._parts.append(message.get("body", b""))
        if self.forward is not None:
            await self.forward(message)

    @property
    def body(self) -> bytes:
        return b"".join(self._parts)

    def header(self, name: bytes) -> bytes | None:
        """The first header of that (lower-case) name, or None."""
        return next((v for k, v in self.headers if k.lower() == name), None)
