"""What the middlewares that look at requests and answers (the answer cache, GraphQL over HTTP)
share: a request body read whole and replayed to the app, and the app's response kept."""

from __future__ import annotations

from starlette.types import Message, Receive, Send


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


async def read_body(receive: Receive) -> bytes:
    """The whole request body, however many messages it came in."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app ``body`` (already read) first, then what ``receive`` gives
    (a disconnect, which the app watches for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
