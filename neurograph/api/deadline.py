"""Every HTTP request gets a time limit, and is given up when its client goes away.

    app = RequestDeadline(app, timeout_s=30.0)

The limit is put in ``neurograph.store.base.request_deadline``, so each database query made for
the request carries what is left of it as its server-side limit (FalkorDB's per-query timeout,
Neo4j's transaction timeout): a request given up leaves no query running on for nobody. When
the client disconnects, or the limit passes before an answer started, the request's task is
cancelled; a request out of time is answered 504 with a JSON error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store.base import request_deadline


class RequestDeadline:
    def __init__(self, app: ASGIApp, timeout_s: float = 30.0) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read, gone = asyncio.Event(), asyncio.Event()
        started = finished = False

        async def app_receive() -> Message:
            if body_read.is_set():  # asked again after the body: only the disconnect is left
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body"):
                body_read.set()
            return message

        async def app_send(message: Message) -> None:
            nonlocal started, finished
            started = True
            finished = finished or (message["type"] == "http.response.body" and not message.get("more_body"))
            await send(message)

        async def watch() -> None:
            await body_read.wait()
            if (await receive())["type"] == "http.disconnect":  # the client left (or the answer is complete)
                gone.set()

        token = request_deadline.set(time.monotonic() + self.timeout_s)
        try:
            task = asyncio.ensure_future(self.app(scope, app_receive, app_send))
        finally:
            request_deadline.reset(token)  # the task took a copy of the context with it
        watcher = asyncio.ensure_future(watch())
        left = asyncio.ensure_future(gone.wait())
        try:
            done, _ = await asyncio.wait({task, left}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if task in done or finished:
                await task  # done, or only tidying up after a complete answer
                return
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if not gone.is_set() and not started:
                await JSONResponse({"errors": [{"message": f"the request exceeded its time limit of "
                                                           f"{self.timeout_s:g} s"}]}, status_code=504)(
                    scope, receive, send)
        finally:
            watcher.cancel()
            left.cancel()
