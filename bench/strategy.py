"""The contract of a strategy (a baseline or a method).

A strategy is a class registered in `bench.registry.STRATEGIES` (contract and capabilities: bench.api),
built by `STRATEGIES.build` from the keyword parameters of its suite entry (a dataclass, so `asdict()`
is its parameter record), with one method:

    run(task: bench.task.Task) -> StrategyResult

It trains on the task's real budget (and whatever it synthesises) and returns the trained
classifier, the synthetic examples it added, and its own log (rounds, sizes, privacy spent, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.data import Split


@dataclass
class StrategyResult:
    classifier: Any  # has predict_proba(x) -> (N, C) probabilities
    synthetic: Split | None = None
    log: dict[str, Any] = field(default_factory=dict)
