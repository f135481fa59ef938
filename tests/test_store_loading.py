"""Starting the embedded FalkorDB over data that takes longer to load than the start's timeout:
waited for while it makes progress (the demo's graph took 8 min to load on two busy cores, past
the 5 min timeout, and serve gave up on a server that was nearly done), given up on when it
stops progressing. A real server, slowed by Redis's own debugging setting."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from neurograph.errors import StoreUnavailable
from neurograph.store import EmbeddedFalkorDB

KEYS = 4000


class SlowLoading(EmbeddedFalkorDB):
    """The embedded server, sleeping 1 ms after each key it loads and reporting progress every KB."""

    def _server_args(self) -> list[str]:
        return [*super()._server_args(), "--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024"]


def _with_data(tmp_path) -> SlowLoading:
    server = SlowLoading(tmp_path / "db")
    server.start()
    c = server.client()
    pipe = c.pipeline(transaction=False)
    for i in range(KEYS):
        pipe.set(f"k{i}", "x" * 64)
    pipe.execute()
    c.bgrewriteaof()  # into an RDB base file: loaded key by key, each one delayed
    while c.info("persistence")["aof_rewrite_in_progress"] or c.info("persistence")["aof_rewrite_scheduled"]:
        time.sleep(0.05)
    c.close()
    server.kill()
    return server


def test_a_server_loading_its_data_is_waited_for_past_the_timeout_while_it_progresses(tmp_path):
    server = _with_data(tmp_path)
    t0 = time.monotonic()
    try:
        server.start(timeout=2.5)
        took = time.monotonic() - t0
        assert took > 2.5, f"loaded in {took:.2f} s: the test did not outlast the timeout"
        assert server.client().dbsize() == KEYS
        assert server.loading() is None  # done
        # the other sign of progress: the server's CPU time (a long write replayed answers nothing)
        assert server.cpu_seconds() is not None and server.cpu_seconds() > 0
    finally:
        server.stop()


def test_a_server_that_stops_progressing_is_given_up_on(tmp_path):
    server = _with_data(tmp_path)
    t0 = time.monotonic()

    def freeze() -> None:  # mid-load: from then on it answers nothing and loads nothing
        while (server.pid() is None or server.loading() is None) and time.monotonic() - t0 < 30:
            time.sleep(0.01)
        if server.pid() is not None:
            os.kill(server.pid(), signal.SIGSTOP)

    threading.Thread(target=freeze, daemon=True).start()
    try:
        with pytest.raises(StoreUnavailable, match="nor progressed"):
            server.start(timeout=1.5)
    finally:
        server.kill()  # SIGKILL works on a stopped process
