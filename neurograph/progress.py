"""The progress bar every long step shows (rich): what it is doing, done / total, time left.

    with progress_bar(enabled=True) as bar:
        task = bar.add_task("neuron pages", total=n)
        bar.advance(task)
"""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(enabled: bool = True) -> Progress:
    """A transient bar (gone when done); a no-op when not ``enabled`` (tests, --quiet)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=True)
