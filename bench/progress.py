"""Progress bars (rich) for the grid of cells and for training epochs; silent under --quiet.

The runner opens one `Progress` for a whole run and makes it current; code deeper down (training
loops, generators) asks `current()` for it and gets a silent one when none is open.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self._rich = None if quiet else RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console or Console(stderr=True),
        )

    def __enter__(self) -> "Progress":
        global _current
        self._previous, _current = _current, self
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        global _current
        if self._rich is not None:
            self._rich.stop()
        _current = self._previous

    @contextlib.contextmanager
    def task(self, description: str, total: int, transient: bool = False) -> Iterator["Bar"]:
        """A bar of `total` steps; a transient bar disappears when its work is done."""
        if self._rich is None:
            yield Bar(None, None)
            return
        tid = self._rich.add_task(description, total=total, status="")
        try:
            yield Bar(self._rich, tid)
        finally:
            if transient:
                self._rich.remove_task(tid)

    def log(self, message: str) -> None:
        if self._rich is not None:
            self._rich.console.print(message, highlight=False)


class Bar:
    def __init__(self, rich: RichProgress | None, tid: object) -> None:
        self._rich, self._tid = rich, tid

    def advance(self, steps: int = 1, status: str = "") -> None:
        if self._rich is not None:
            self._rich.update(self._tid, advance=steps, status=status)


_current: Progress | None = None
_silent = Progress(quiet=True)


def current() -> Progress:
    return _current or _silent
