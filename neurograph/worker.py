"""The API's side of the model worker (``loaders/worker.py``): a client over its unix socket and
the supervised process. No torch here: the worker is a process of its own.

    worker = WorkerProcess(settings, model="smollm2-135m")
    await worker.start()                     # spawns `python -m loaders.worker`, waits for its ping
    result = await worker.client.request("run_text", text="In the beginning", top=10)
    await worker.stop()

A worker that dies is started again by ``WorkerProcess.supervise`` (backoff, logged); while it
is down, requests get :class:`WorkerUnavailable` with a clear message.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .config import Settings
from .errors import NeuroGraphError

log = logging.getLogger(__name__)
START_HINT = "start one with `neurograph serve --model NAME` (the demo does it for its model)"


class WorkerUnavailable(NeuroGraphError):
    """No model worker answers (none started, or it is restarting)."""


class WorkerBusy(NeuroGraphError):
    """The worker's queue is full: retry shortly."""


class WorkerError(NeuroGraphError):
    """The worker refused or failed a request (its message says why)."""


class WorkerClient:
    """One request per connection: a JSON line out, a JSON line back."""

    def __init__(self, socket_path: Path, *, timeout_s: float = 120.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)

    async def request(self, op: str, **args: Any) -> Any:
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=2**24)
        except (OSError, ValueError) as e:
            raise WorkerUnavailable(f"no model worker is running for this server: {START_HINT}") from e
        try:
            writer.write(orjson.dumps({"id": next(self._ids), "op": op, **args}) + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), self.timeout_s)
        except asyncio.TimeoutError as e:
            raise WorkerError(f"the model worker did not answer within {self.timeout_s:g} s") from e
        except (OSError, ConnectionError) as e:
            raise WorkerUnavailable(f"the model worker went away during the request (it restarts): {e}") from e
        finally:
            writer.close()
        if not line:
            raise WorkerUnavailable("the model worker went away during the request; it is being restarted")
        reply = orjson.loads(line)
        if reply.get("ok"):
            return reply["result"]
        if reply.get("busy"):
            raise WorkerBusy(reply["error"])
        raise WorkerError(reply.get("error", "the model worker failed"))


class SharedWorker:
    """The model worker another process of this server runs and supervises (``serve --processes``):
    reached over the same socket."""

    def __init__(self, socket_path: str | Path) -> None:
        self.client = WorkerClient(Path(socket_path))
        self.graph_name: str | None = None  # the model it runs: asked at the first request
        self.state = "unknown"

    async def probe(self) -> str:
        """up while something accepts on the worker's socket (also while it computes), else down."""
        try:
            _, writer = await asyncio.open_unix_connection(str(self.client.socket_path))
        except (OSError, ValueError):
            self.state = "down"
        else:
            writer.close()
            self.state = "up"
        return self.state


class WorkerProcess:
    """The model worker as a child process of the server, restarted when it dies."""

    def __init__(self, settings: Settings, model: str, *, graph_model: str | None = None, device: str = "cpu",
                 socket_path: Path | None = None, extra_args: list[str] | None = None) -> None:
        self.settings = settings
        self.model = model
        self.graph_model = graph_model
        self.device = device
        self.socket_path = Path(socket_path or settings.data_dir / f"worker-{model.replace('/', '--')}.sock")
        self.extra_args = extra_args or []
        self.client = WorkerClient(self.socket_path)
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._state = "stopped"
        self.graph_name = graph_model or model  # as the worker reports it once started

    @property
    def state(self) -> str:
        """up, starting, down or stopped (a dead process is down before the supervisor notices)."""
        if self._state == "up" and (self.proc is None or self.proc.poll() is not None):
            return "down"
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value

    async def probe(self) -> str:
        return self.state

    def _spawn(self) -> subprocess.Popen:
        args = [sys.executable, "-m", "loaders.worker", "--model", self.model, "--socket", str(self.socket_path),
                "--device", self.device, *self.extra_args]
        if self.graph_model:
            args += ["--graph-model", self.graph_model]
        env = {**os.environ, "NEUROGRAPH_DATA_DIR": str(self.settings.data_dir),
               "NEUROGRAPH_GRAPH": self.settings.graph}
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(args, env=env, cwd=Path(__file__).resolve().parents[1])

    async def start(self, timeout: float = 300.0) -> None:
        self.state = "starting"
        self.proc = self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.state = "down"
                raise WorkerUnavailable(f"the model worker for {self.model} exited with code {self.proc.returncode}")
            try:
                self.graph_name = (await self.client.request("ping"))["model"]
                self.state = "up"
                return
            except WorkerUnavailable:
                await asyncio.sleep(0.2)
        raise WorkerUnavailable(f"the model worker for {self.model} did not start within {timeout:.0f} s")

    async def supervise(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """Restart the worker whenever it has died, with backoff, until ``stop``."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
                return
            except asyncio.TimeoutError:
                pass
            if self.proc is not None and self.proc.poll() is None:
                continue
            self.state = "down"
            log.error("the model worker for %s is not running (exit code %s): restarting it", self.model,
                      self.proc.returncode if self.proc else None)
            try:
                await self.start()
                self.restarts += 1
                backoff = 1.0
                log.warning("the model worker for %s is back (restart %d)", self.model, self.restarts)
            except Exception as e:  # noqa: BLE001 - keep trying
                log.error("the model worker for %s could not be restarted (%s); next try in %.0f s", self.model,
                          e, backoff)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, 60.0)

    async def stop(self) -> None:
        self.state = "stopped"
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
