"""The evaluation of a suite's metrics on a finished strategy. What a metric is and what it sees (the
Metric protocol and EvalContext) is part of the plug-in contract: bench.api.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

from bench.api import EvalContext, Measured
from bench.errors import BenchError
from bench.registry import METRICS


def check_metric_params(name: str, params: dict[str, Any]) -> None:
    """Fail before any training when a suite gives a metric parameters it does not take."""
    try:
        inspect.signature(METRICS.get(name)).bind(None, **params)
    except TypeError as exc:
        raise BenchError(f"metric {name!r}: bad parameters {params}: {exc}") from None


def evaluate(specs: list[Any], ctx: EvalContext) -> dict[str, dict[str, Any]]:
    """Each metric of `specs` (bench.config.KeyedSpec: name, params, id) on `ctx`, keyed by id or name."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name = spec.name
        value = METRICS.get(name)(ctx, **spec.params)
        measured = value if isinstance(value, Measured) else None
        if measured is not None:
            value = measured.value
        if value is None:
            pass
        elif isinstance(value, dict):
            value = {str(k): _finite(v) for k, v in value.items()}
        else:
            value = _finite(value)
        record: dict[str, Any] = {"value": value, "higher_is_better": METRICS.caps(name).higher_is_better}
        if measured is not None:  # the sample counts beside the value, and why it is null where it is
            record["samples"] = {str(side): int(n) for side, n in measured.samples.items()}
            if measured.reason is not None:
                record["reason"] = measured.reason
        out[getattr(spec, "key", name)] = record
    return out


def _finite(v: Any) -> float | None:
    """JSON has no NaN/inf: an undefined value is written as null."""
    v = float(v)
    return v if math.isfinite(v) else None
