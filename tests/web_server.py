"""Serve a Starlette app with uvicorn on a free loopback port inside the running event loop,
for browser tests that share the test's store.

    async with serve(create_app(settings=settings, store=store)) as base_url:
        await page.goto(base_url + "/")
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve(app: Any, *, timeout: float = 10.0) -> AsyncIterator[str]:
    """Run ``app`` until the block exits; yields its base URL (http://127.0.0.1:PORT)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto")
    server = uvicorn.Server(config)
    # Same loop as the test: the app can use the test's store, whose client is bound to this loop.
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("uvicorn exited before it started")
        if loop.time() > deadline:
            server.should_exit = True
            raise TimeoutError(f"uvicorn did not start on port {port} within {timeout}s")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout)
