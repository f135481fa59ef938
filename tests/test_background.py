"""The demo's background process: its steps run one after another in child processes, a failed
step does not stop the next, SIGTERM stops the running step and the rest, and the demo's steps
are the corpus circuits then the given command, each a valid `neurograph` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from neurograph import cli


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_steps_run_in_sequence_a_failure_moves_on_and_sigterm_stops_the_running_step(tmp_path):
    first, pidfile, log = tmp_path / "first", tmp_path / "pid", tmp_path / "background.log"
    steps = [[sys.executable, "-c", f"open({str(first)!r}, 'w').write('done')"],
             [sys.executable, "-c", "import sys; sys.exit(3)"],
             [sys.executable, "-c", f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
                                    "time.sleep(120)"],
             [sys.executable, "-c", f"open({str(tmp_path / 'never')!r}, 'w')"]]
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "neurograph.background", json.dumps(steps)], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pidfile.read_text())
    assert first.read_text() == "done" and _alive(child)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:  # reaped by the driver: gone at once
        time.sleep(0.05)
    assert not _alive(child)
    text = log.read_text()
    assert "exit 3 after" in text and "background: stopped" in text
    assert not (tmp_path / "never").exists()


def test_bad_steps_are_refused_with_a_message():
    r = subprocess.run([sys.executable, "-m", "neurograph.background", '{"not": "a list"}'], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "must be a list" in r.stderr


def test_the_demo_runs_corpus_circuits_over_256_prompts_first():
    cmd = cli._background_steps("smollm2-135m", ["echo", "n2g"])
    assert cmd[:3] == [sys.executable, "-m", "neurograph.background"]
    circuits, then = json.loads(cmd[3])
    assert circuits[:3] == [sys.executable, "-m", "neurograph"] and then == ["echo", "n2g"]
    args = cli.build_parser().parse_args(circuits[3:])
    assert (args.command, args.model, args.prompts, args.threads, args.quiet) == ("circuits", "smollm2-135m", 256, 1,
                                                                                   True)


def test_the_steps_stop_when_their_parent_dies_even_by_kill_9(tmp_path):
    """uvicorn re-raises SIGTERM after its shutdown, so serve's own cleanup does not run then;
    the background process must notice its parent's end by itself."""
    pidfile = tmp_path / "pid"
    steps = [[sys.executable, "-c", f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
                                    "time.sleep(120)"]]
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, "
                               f"'-m', 'neurograph.background', {json.dumps(steps)!r}]); time.sleep(120)"])
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pidfile.read_text())
    parent.kill()
    parent.wait(timeout=10)
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
