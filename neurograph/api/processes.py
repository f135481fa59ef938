"""More API processes on the same port (``serve --processes N``): one Python process answers
about 70 depth-2 neighbourhoods a second on a core (12–15 ms of Python each), so a machine's
other cores serve only through more processes.

The process ``serve`` runs is the owner: it opens the store (starting the embedded FalkorDB), and
supervises what exists once per server — FalkorDB and its replica, the model worker, the page
renderer, and the peers. Peers are plain API processes: they accept connections from the same
listening socket, open the store without starting it and reach the model worker over its socket.

    sock = listen("127.0.0.1", 8000)
    peers = [Peer(i, sock, settings) for i in range(1, n)]
    app = create_app(settings, peers=peers)          # its lifespan starts and supervises them
    uvicorn.Server(uvicorn.Config(app)).run(sockets=[sock])

A peer that dies is started again by the owner's :class:`~neurograph.store.supervisor.Supervisor`
(as FalkorDB is) and dies with the owner, however the owner ends.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time
from typing import Any

from ..config import Settings
from ..errors import NeuroGraphError

log = logging.getLogger(__name__)


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening TCP socket every API process accepts from (as uvicorn binds its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise NeuroGraphError(f"cannot listen on {host}:{port}: {e.strerror} (another server there? --port)") from e
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def log_like_uvicorn(level: str) -> None:
    """Our own messages (e.g. the page renderer's) beside uvicorn's, at its level."""
    logger = logging.getLogger("neurograph")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(getattr(logging, level.upper(), logging.INFO))


def _serve_peer(sock: socket.socket, settings: Settings, worker: str | None, app_options: dict[str, Any],
                server_options: dict[str, Any]) -> None:
    """A peer's whole life (in a spawned process): the app without the owner's duties."""
    import uvicorn

    from ..background import die_with_parent
    from ..worker import SharedWorker
    from .app import create_app

    die_with_parent()
    log_like_uvicorn(server_options.get("log_level", "info"))
    shared = SharedWorker(worker) if worker else None
    app = create_app(settings, owner=False, worker=shared, **app_options)
    uvicorn.Server(uvicorn.Config(app, **server_options)).run(sockets=[sock])


class Peer:
    """One more API process, supervised like an embedded server (name, is_running, pid, start)."""

    def __init__(self, index: int, sock: socket.socket, settings: Settings, *, worker: Any = None,
                 app_options: dict[str, Any] | None = None, server_options: dict[str, Any] | None = None) -> None:
        self.name = f"API process {index}"
        self.sock = sock
        self.settings = settings
        self.data_dir = settings.data_dir  # for the supervisor's log line
        # The model worker the owner runs, reached by its socket (a WorkerProcess is not picklable).
        self.worker = str(worker.socket_path) if worker is not None else None
        self.app_options = app_options or {}  # create_app's and uvicorn.Config's, as the owner's
        self.server_options = server_options or {}
        self.proc: multiprocessing.process.BaseProcess | None = None
        self.started_at = 0.0

    min_life_s = 10.0  # a peer that lived less than this is restarted only after the supervisor's backoff

    def start(self) -> None:
        last, self.proc = self.proc, None
        if last is not None and time.monotonic() - self.started_at < self.min_life_s:
            # Died right after starting (e.g. the store was unreachable): raising makes the
            # supervisor wait, with backoff, instead of spawning a process every round.
            raise RuntimeError(f"{self.name} exited (code {last.exitcode}) "
                               f"{time.monotonic() - self.started_at:.1f} s after it started")
        self.started_at = time.monotonic()
        # spawn, not fork: the owner has an event loop, threads and open store connections.
        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(target=_serve_peer, name=self.name, daemon=False,
                                args=(self.sock, self.settings, self.worker, self.app_options, self.server_options))
        self.proc.start()
        log.info("%s started (pid %d)", self.name, self.proc.pid)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def pid(self) -> int | None:
        return self.proc.pid if self.is_running() else None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (uvicorn finishes the requests in flight), then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
        self.proc = None
