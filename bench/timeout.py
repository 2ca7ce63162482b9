"""A wall-clock limit for one cell (`cell_timeout` in a suite, `bench run --cell-timeout`).

The cell runs in the runner's own process (its data, its caches and its device stay where they are);
the limit is a SIGALRM timer (`signal.setitimer`) whose handler raises CellTimeout in the main thread.
Python runs signal handlers between bytecodes, so a limit takes effect as soon as control is back in
Python: a training loop returns to Python after every batch, but one long call into C (a single huge
matmul, a blocking read) finishes first. Where the timer is unavailable (Windows, a thread other than
the main one) the limit is not enforced, and `time_limit` says so once on stderr.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator


class CellTimeout(BaseException):
    """Raised inside a cell that ran past its limit. A BaseException, like KeyboardInterrupt, so that
    a plug-in's `except Exception:` does not swallow it; the runner turns it into an error result."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the cell ran longer than its limit of {seconds:g} s (cell_timeout) and was stopped")
        self.seconds = seconds


_warned = False


def available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CellTimeout in the body once `seconds` of wall-clock time have passed (None: no limit)."""
    global _warned
    if seconds is None:
        yield
        return
    if not available():
        if not _warned:
            print("bench: warning: --cell-timeout is not enforced here (it needs SIGALRM in the main thread)",
                  file=sys.stderr)
            _warned = True
        yield
        return
    armed = True

    def handler(signum: int, frame: object) -> None:
        if armed:  # a signal that arrives while the limit is being lifted is ignored
            raise CellTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
