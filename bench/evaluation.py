"""What a metric sees, and the evaluation of a suite's metrics on a finished strategy.

A metric is a function registered in `bench.registry.METRICS` with its direction and modalities:

    @METRICS.register("accuracy", higher_is_better=True, modalities=("image", "tabular", "text"))
    def accuracy(ctx: EvalContext) -> float: ...

It returns a float, or a dict of floats (e.g. one per class). Direction lives with the metric.
"""
from __future__ import annotations

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


def check_metrics(names: list[str], modality: str) -> None:
    """Fail before any training when a metric is unknown or does not apply to the modality."""
    for name in names:
        mods = METRICS.meta(name).get("modalities")
        if mods and modality not in mods:
            raise BenchError(f"metric {name!r} does not apply to {modality} data (only {', '.join(mods)})")


def evaluate(names: list[str], ctx: EvalContext) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        value = METRICS.get(name)(ctx)
        if isinstance(value, dict):
            value = {str(k): _finite(v) for k, v in value.items()}
        else:
            value = _finite(value)
        out[name] = {"value": value, "higher_is_better": bool(METRICS.meta(name)["higher_is_better"])}
    return out


def _finite(v: Any) -> float | None:
    """JSON has no NaN/inf: an undefined value is written as null."""
    v = float(v)
    return v if math.isfinite(v) else None
