"""Fairness across the groups of a sensitive attribute, through fairlearn: of a binary classifier's
test predictions, and of the labels of the synthetic rows a strategy adds to a table (an audit: does
the generator amplify the real data's label bias?).

| metric | direction | what |
|---|---|---|
| `demographic_parity_difference` | lower, 0 best | max - min over groups of P(pred = 1 given group), test split |
| `demographic_parity_ratio` | higher, 1 best | min / max of those rates: the disparate impact ratio (four-fifths rule: >= 0.8) |
| `equalized_odds_difference` | lower, 0 best | the larger of the max - min gaps over groups of the true- and the false-positive rate |
| `synthetic_parity_difference` | lower, 0 best | max - min over groups of P(y = 1 given group) among synthetic rows: a dict |
| `synthetic_disparate_impact` | higher, 1 best | min / max of those label rates: a dict |

Conventions:
- Binary tasks only: the positive class is class 1 (`classes[1]`), predictions are `probs.argmax(1)`.
  With more than two classes every metric here returns None (not applicable, like a missing attribute)
  rather than raising, so one suite may list them for binary and multi-class data sets alike.
- `attribute` names the sensitive attribute. The prediction metrics read the test split's groups
  (`task.test.groups[attribute]`, any modality) and return None when the split lacks it. The audit
  reads the groups from the rows themselves (`schema.groups(x)`, tables only: the sensitive attributes
  are columns) and returns None without synthetic rows, without a schema, or when the schema declares
  no such attribute.
- The audit's dict is {"synthetic": value among the synthetic rows, "real": value among the real
  training budget `task.train`, "shift": synthetic - real}. The registered direction holds for all
  three entries: a negative parity-difference shift (a positive disparate-impact shift) means the
  synthetic rows are less label-disparate than the real ones. Only groups present among a split's rows
  enter its value (a group the generator never produced is absent from "synthetic").
- Undefined values: a ratio is 0/0 when no row of any group is positive; the scalar ratio is then
  None and a dict entry NaN (written as null).
- Small groups: every group is kept however few rows it has. A rate over n rows has a standard error of
  up to 0.5 / sqrt(n) (0.16 at n = 10), and max - min over many groups is biased upwards, so gaps
  involving small groups are mostly noise; read them with the group sizes (see `per_group_accuracy`
  in metrics.groups). By fairlearn's convention (scikit-learn's zero_division) a group with no
  positive (negative) test examples has a true- (false-) positive rate of 0, which can inflate
  `equalized_odds_difference` to 1 on its own.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.api import MODALITIES, EvalContext
from bench.errors import BenchError
from bench.registry import METRICS


def _fairlearn() -> Any:
    try:
        import fairlearn.metrics as fm
    except ImportError:
        raise BenchError("fairness metrics need fairlearn (pip install -e '.[tabular]')") from None
    return fm


def _test_inputs(ctx: EvalContext, attribute: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(labels, predictions, groups) of the test split, or None where the metrics do not apply."""
    groups = ctx.task.test.groups.get(attribute)
    probs = np.asarray(ctx.probs)
    if groups is None or probs.shape[1] != 2:
        return None
    y = np.asarray(ctx.y_true)
    if len(groups) != len(y):
        raise BenchError(f"groups[{attribute!r}] has {len(groups)} entries for {len(y)} test examples")
    return y, probs.argmax(axis=1), np.asarray(groups)


def _on_test(ctx: EvalContext, attribute: str, name: str) -> float | None:
    """fairlearn.metrics.`name` of the test predictions over `attribute`'s groups; None where it does not
    apply or is undefined (0/0)."""
    inputs = _test_inputs(ctx, attribute)
    if inputs is None:
        return None
    y, pred, groups = inputs
    value = float(getattr(_fairlearn(), name)(y, pred, sensitive_features=groups))
    return value if math.isfinite(value) else None


@METRICS.register("demographic_parity_difference", range=(0, 1), higher_is_better=False, modalities=MODALITIES)
def demographic_parity_difference(ctx: EvalContext, attribute: str = "race") -> float | None:
    """Largest gap between two groups' rates of positive predictions on the test split."""
    return _on_test(ctx, attribute, "demographic_parity_difference")


@METRICS.register("demographic_parity_ratio", range=(0, 1), higher_is_better=True, modalities=MODALITIES)
def demographic_parity_ratio(ctx: EvalContext, attribute: str = "race") -> float | None:
    """Smallest over largest group rate of positive predictions (disparate impact); None when no test
    example is predicted positive (0/0)."""
    return _on_test(ctx, attribute, "demographic_parity_ratio")


@METRICS.register("equalized_odds_difference", range=(0, 1), higher_is_better=False, modalities=MODALITIES)
def equalized_odds_difference(ctx: EvalContext, attribute: str = "race") -> float | None:
    """max(TPR gap, FPR gap) between groups on the test split (fairlearn's worst case)."""
    return _on_test(ctx, attribute, "equalized_odds_difference")


def _label_disparity(ctx: EvalContext, attribute: str, ratio: bool) -> dict[str, float] | None:
    """The label's parity difference (or ratio) over `attribute`'s groups among the synthetic rows and
    among the real training budget, and their difference."""
    schema = getattr(ctx.task.data, "schema", None)
    if (ctx.synthetic is None or len(ctx.synthetic) == 0 or schema is None
            or attribute not in getattr(schema, "sensitive", {}) or len(ctx.class_names) != 2):
        return None
    fm = _fairlearn()
    fn = fm.demographic_parity_ratio if ratio else fm.demographic_parity_difference

    def value(split: Any) -> float:
        # A group's label rate is fairlearn's selection rate with the labels standing as predictions.
        y = np.asarray(split.y, dtype=np.int64)
        return float(fn(y, y, sensitive_features=schema.groups(split.x)[attribute]))

    synthetic, real = value(ctx.synthetic), value(ctx.task.train)
    return {"synthetic": synthetic, "real": real, "shift": synthetic - real}


@METRICS.register("synthetic_parity_difference", higher_is_better=False, modalities=("tabular",), needs="synthetic")
def synthetic_parity_difference(ctx: EvalContext, attribute: str = "race") -> dict[str, float] | None:
    """Statistical parity difference of the label, max - min over groups of P(y = 1 given group), in
    the synthetic rows vs the real training budget (see the module docstring)."""
    return _label_disparity(ctx, attribute, ratio=False)


@METRICS.register("synthetic_disparate_impact", higher_is_better=True, modalities=("tabular",), needs="synthetic")
def synthetic_disparate_impact(ctx: EvalContext, attribute: str = "race") -> dict[str, float] | None:
    """Disparate impact ratio of the label, min / max over groups of P(y = 1 given group), in the
    synthetic rows vs the real training budget (see the module docstring)."""
    return _label_disparity(ctx, attribute, ratio=True)
