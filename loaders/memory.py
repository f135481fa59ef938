"""Keeping a long build's resident memory at the maximum of its steps, not their sum, and
measuring each step's peak."""

from __future__ import annotations

from pathlib import Path

_PROC = Path("/proc/self")


def release_memory() -> None:
    """Between analyses: collect garbage and hand freed heap back to the OS. Each step holds
    gigabytes of temporaries (rows, top-k tensors); without this the build's resident memory
    is the sum of its steps rather than their maximum."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def reset_peak() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed: the peak stays the process's
        pass


def peak_rss_mb() -> float | None:
    """Peak resident memory since the last :func:`reset_peak` (or process start), in MiB."""
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
