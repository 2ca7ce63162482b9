"""The one exception type that the CLI turns into a one-line message and exit code 2."""
from __future__ import annotations


class BenchError(Exception):
    """A user-facing error: bad input, missing data, an unknown name. Its message is one line."""
