"""Progress bars for every long loop: description, bar, count, status, elapsed time and ETA.

Descriptions and status texts are shown as they are (never read as rich markup), so a case or
file name with square brackets is printed faithfully. Under torchrun only rank 0 shows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from wsseg import distributed

__all__ = ["progress_bar", "track"]


def progress_bar(transient: bool = False) -> Progress:
    """A rich progress bar; add tasks with a ``status`` field (the last metrics, or ``""``)."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
        disable=not distributed.is_main(),
    )


def track(items: Iterable, description: str, total: int | None = None) -> Iterator:
    """Iterate over ``items`` behind a progress bar with an ETA."""
    total = total if total is not None else len(items)  # type: ignore[arg-type]
    with progress_bar() as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)
