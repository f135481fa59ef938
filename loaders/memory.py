"""Keeping a long build's resident memory at the maximum of its steps, not their sum."""

from __future__ import annotations


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
