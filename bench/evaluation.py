"""What a metric sees, and the evaluation of a suite's metrics on a finished strategy.

A metric is a function registered in `bench.registry.METRICS` with its direction and modalities:

    @METRICS.register("accuracy", higher_is_better=True, modalities=("image", "tabular", "text"))
    def accuracy(ctx: EvalContext) -> float: ...

It returns a float, a dict of floats (e.g. one per class), or None where it does not apply (an
image-quality metric for a strategy without synthetic data). Keyword parameters after `ctx` come
from the suite (`metrics: [{name: fid, params: {samples: 500}}]`). Direction lives with the metric.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.data import Split
from bench.errors import BenchError
from bench.registry import METRICS


@dataclass
class EvalContext:
    task: Any  # bench.task.Task
    classifier: Any  # bench.training.Classifier (or anything with predict_proba)
    y_true: np.ndarray  # test labels, int64 (N,)
    probs: np.ndarray  # predicted test probabilities, float64 (N, C)
    synthetic: Split | None  # synthetic examples the strategy added, if any

    @property
    def class_names(self) -> list[str]:
        return self.task.data.classes


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
        if value is None:
            pass
        elif isinstance(value, dict):
            value = {str(k): _finite(v) for k, v in value.items()}
        else:
            value = _finite(value)
        out[getattr(spec, "key", name)] = {"value": value, "higher_is_better": METRICS.caps(name).higher_is_better}
    return out


def _finite(v: Any) -> float | None:
    """JSON has no NaN/inf: an undefined value is written as null."""
    v = float(v)
    return v if math.isfinite(v) else None
