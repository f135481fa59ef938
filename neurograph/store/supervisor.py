"""Keeps the embedded FalkorDB servers a serving process depends on alive.

    supervisor = Supervisor([server, server.replica()])
    task = asyncio.create_task(supervisor.run(stop))     # in the server's lifespan
    supervisor.status()                                   # {'FalkorDB': 'up', ...} for /healthz

A server that stops answering is started again (its AOF replayed, its indexes rebuilt: see
embedded.py) with exponential backoff between failed tries, and each step is logged. The read
replica is watched only once something started it (its pid file exists). The same goes for
any other process the server runs once and that has a ``name``, ``is_running()``, ``pid()``,
``start()`` and ``data_dir`` (the API's peers, ``api/processes.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .embedded import ReadReplica

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, servers: list[Any], *, every: float = 0.5, max_backoff: float = 30.0) -> None:
        self.servers = servers
        self.every = every
        self.max_backoff = max_backoff
        self.down_since: dict[str, float] = {}
        self.restarts: dict[str, int] = {s.name: 0 for s in servers}
        self._next_try: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    def status(self) -> dict[str, str]:
        return {s.name: "down" if s.name in self.down_since else "up" for s in self.servers}

    def healthy(self) -> bool:
        return not self.down_since

    async def check(self) -> None:
        """One round: restart what is down and due for a try."""
        for server in self.servers:
            if isinstance(server, ReadReplica) and not server.pid_file.exists() and server.name not in self.down_since:
                continue  # never started (or stopped cleanly): nothing to keep alive
            if await asyncio.to_thread(server.is_running):
                if server.name in self.down_since:
                    log.warning("%s is back after %.1f s", server.name, time.monotonic() - self.down_since.pop(server.name))
                    self._backoff.pop(server.name, None)
                continue
            if await asyncio.to_thread(server.pid) is not None and server.name not in self.down_since:
                continue  # alive but not answering yet: loading or syncing its data, not dead
            now = time.monotonic()
            if server.name not in self.down_since:
                self.down_since[server.name] = now
                log.error("%s (data in %s) stopped answering: restarting it", server.name, server.data_dir)
            if now < self._next_try.get(server.name, 0.0):
                continue
            try:
                await asyncio.to_thread(server.start)
                self.restarts[server.name] += 1
                log.warning("%s restarted (restart %d)", server.name, self.restarts[server.name])
            except Exception as e:  # noqa: BLE001 - keep trying; the log says why
                delay = min(self._backoff.get(server.name, 0.5) * 2, self.max_backoff)
                self._backoff[server.name] = delay
                self._next_try[server.name] = time.monotonic() + delay
                log.error("%s could not be restarted (%s); next try in %.1f s", server.name, e, delay)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the watcher itself must not die
                log.exception("supervising the embedded FalkorDB failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.every)
            except asyncio.TimeoutError:
                pass
