"""What the performance benchmarks share besides their fixtures (conftest.py)."""
from __future__ import annotations

import time
from typing import Any, Callable


def timed(fn: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    """`fn`, appending each call's wall time to `seconds`: under --benchmark-disable (no stats) the one
    untimed call still gives the summary a number."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - t0)
    return wrapper
