"""`real_only`: the task model trained on the real-data budget alone; the reference every
synthetic-data strategy has to beat."""
from __future__ import annotations

from dataclasses import dataclass

from bench.api import StrategyResult, TaskView
from bench.registry import STRATEGIES


@STRATEGIES.register("real_only", kind="baseline", reference=0, modalities=("image", "tabular", "vector", "text"))
@dataclass
class RealOnly:
    def run(self, task: TaskView) -> StrategyResult:
        clf = task.fit(label="real_only")
        return StrategyResult(clf, synthetic=None, log={
            "real_examples": len(task.train),
            "synthetic_examples": 0,
            "best_epoch": clf.best_epoch,
            "history": clf.history,
        })
