"""Run commands one after another in one background process: the demo's slow work (corpus
circuits, then N2G for every neuron) while it serves.

    python -m neurograph.background '[["python", "-m", "neurograph", "circuits", ...], [...]]'

Each step is a child process, so a finished step's memory (a model, its activations) is freed
before the next starts. Every step is resumable, so a step that fails is logged and the next one
runs; the next start retries it. SIGTERM or SIGINT stops the running step and the rest, and so
does its parent's end (serve exiting, even by kill -9).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any


def die_with_parent() -> None:
    """SIGTERM when the parent (serve) goes, however it goes: uvicorn re-raises SIGTERM after its
    shutdown, so serve's own cleanup never runs then, and kill -9 runs none. Linux only."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent went before prctl: nothing would signal us
        os.kill(os.getpid(), signal.SIGTERM)


def run_steps(steps: list[list[str]]) -> int:
    current: subprocess.Popen | None = None

    def stop(signum: int, frame: Any) -> None:
        if current is not None and current.poll() is None:
            current.terminate()  # the step keeps what it has stored; its next run resumes
            try:
                current.wait(timeout=8)
            except subprocess.TimeoutExpired:
                current.kill()
        print("background: stopped", flush=True)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # Ctrl-C on serve reaches its whole process group: same clean stop
    die_with_parent()
    failed = 0
    for step in steps:
        t0 = time.monotonic()
        print(f"background: start {' '.join(step)}", flush=True)
        current = subprocess.Popen(step, stdin=subprocess.DEVNULL)
        rc = current.wait()
        failed += rc != 0
        print(f"background: exit {rc} after {time.monotonic() - t0:.0f} s: {' '.join(step)}", flush=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m neurograph.background STEPS_JSON  (a JSON list of argument lists)", file=sys.stderr)
        return 2
    steps = json.loads(argv[0])
    if not isinstance(steps, list) or not all(isinstance(s, list) and s and all(isinstance(a, str) for a in s)
                                              for s in steps):
        print("background: STEPS_JSON must be a list of non-empty lists of strings", file=sys.stderr)
        return 2
    return run_steps(steps)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
