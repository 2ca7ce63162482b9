"""Metrics for imbalanced classes and for sensitive groups, on the test split: balanced accuracy, and
accuracy within each group of a sensitive attribute (`Split.groups`) and in the worst such group,
through scikit-learn.

(The per-class recall is `per_class_accuracy` in metrics.classification.)
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from bench.api import MODALITIES, EvalContext
from bench.errors import BenchError
from bench.registry import METRICS


@METRICS.register("balanced_accuracy", range=(0, 1), summary=1, chance="uniform", higher_is_better=True,
                  modalities=MODALITIES)
def balanced_accuracy(ctx: EvalContext) -> float:
    """Mean over the classes present in the test labels of the recall (the per-class accuracy);
    chance level is 1 / C whatever the class proportions."""
    return float(balanced_accuracy_score(ctx.y_true, np.asarray(ctx.probs).argmax(axis=1)))


@METRICS.register("per_group_accuracy", range=(0, 1), higher_is_better=True, modalities=MODALITIES)
def per_group_accuracy(ctx: EvalContext, attribute: str = "race") -> dict[str, float] | None:
    """Accuracy within each value of the test split's sensitive attribute `attribute`, keyed by the
    value; None when the test split has no such attribute."""
    groups = ctx.task.test.groups.get(attribute)
    if groups is None:
        return None
    groups = np.asarray(groups)
    y, pred = np.asarray(ctx.y_true), np.asarray(ctx.probs).argmax(axis=1)
    if len(groups) != len(y):
        raise BenchError(f"groups[{attribute!r}] has {len(groups)} entries for {len(y)} test examples")
    return {str(g): float(accuracy_score(y[groups == g], pred[groups == g])) for g in np.unique(groups)}


@METRICS.register("worst_group_accuracy", range=(0, 1), higher_is_better=True, modalities=MODALITIES)
def worst_group_accuracy(ctx: EvalContext, attribute: str = "race") -> float | None:
    """The lowest accuracy over the values of the sensitive attribute `attribute` (see
    per_group_accuracy); None when the test split has no such attribute."""
    per_group = per_group_accuracy(ctx, attribute=attribute)
    return None if not per_group else min(per_group.values())
