"""The progress bars every long step shows (rich, the one progress library): what it is doing,
done / total, time left.

    with progress_bar(enabled=True) as bar:            # several tasks on one display
        task = bar.add_task("neuron pages", total=n)
        bar.advance(task)

    for block in track(blocks, "neuron composition", enabled=progress):   # one loop
        ...

    with Counter("writing graph", total=n_rows, enabled=progress) as count:   # counted as work is done
        count(len(batch))
"""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")


def progress_bar(enabled: bool = True) -> Progress:
    """A transient bar (gone when done); a no-op when not ``enabled`` (tests, --quiet)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=True)


def track(items: Iterable[T], description: str, *, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """``items``, one by one, with a bar over them (``total`` when ``items`` has no len)."""
    if not enabled:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


class Counter:
    """A bar that counts what the caller reports done; also a plain ``progress(n)`` callback.
    Shown from its creation until ``close()`` (or the end of its ``with`` block).

        with Counter("writing graph", total=n_rows, enabled=progress) as count:
            await store.write("upsert_neurons", rows, progress=count)
    """

    def __init__(self, description: str, *, total: int | None = None, done: int = 0, enabled: bool = True) -> None:
        self.description = description
        self.bar = progress_bar(enabled)
        self.task = self.bar.add_task(description, total=total, completed=done)
        self.bar.start()

    def __call__(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def total(self, n: int) -> None:
        """Set the total once it is known."""
        self.bar.update(self.task, total=n)

    def note(self, text: str) -> None:
        """A short text after the description (e.g. a rate: "1200 tok/s")."""
        self.bar.update(self.task, description=f"{self.description} ({text})")

    def __enter__(self) -> "Counter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.bar.stop()
