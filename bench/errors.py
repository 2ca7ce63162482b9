"""The one exception type that the CLI turns into a one-line message and exit code 2."""
from __future__ import annotations


class BenchError(Exception):
    """A user-facing error: bad input, missing data, an unknown name. Its message is one line."""


class BenchWarning(UserWarning):
    """A user-facing warning that the CLI prints as one line (`bench: warning: ...`); the work goes on."""


class SuiteWarning(BenchWarning):
    """A suite that is valid but probably not what its author meant (e.g. a control that differs from the
    method in more than the targeting)."""
