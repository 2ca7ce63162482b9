from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from bench.api import EvalContext
from bench.config import NamedSpec
from bench.evaluation import evaluate
from bench.registry import METRICS


def ctx(probs, y, classes=("a", "b")):
    task = SimpleNamespace(data=SimpleNamespace(classes=list(classes)))
    return EvalContext(task=task, classifier=None, y_true=np.asarray(y), probs=np.asarray(probs, dtype=float), synthetic=None)


P = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]
Y = [0, 1, 1, 1]  # predictions 0, 0, 1, 1: three right


def test_accuracy_and_macro_f1_by_hand():
    c = ctx(P, Y)
    assert METRICS.get("accuracy")(c) == pytest.approx(0.75)
    # class 0: precision 1/2, recall 1 -> F1 2/3; class 1: precision 1, recall 2/3 -> F1 0.8
    assert METRICS.get("macro_f1")(c) == pytest.approx((2 / 3 + 0.8) / 2)


def test_auroc_by_hand_ranks_and_ignores_the_threshold():
    # positives' scores 0.4, 0.7, 0.8 against the negative's 0.1: every pair ranked right
    assert METRICS.get("auroc")(ctx(P, Y)) == pytest.approx(1.0)
    # positives score 0.3 and 0.9, negatives 0.2 and 0.6: 3 of the 4 (positive, negative) pairs ranked right
    # (accuracy at the 0.5 threshold is 0.5: the ranking is what AUROC reads)
    assert METRICS.get("auroc")(ctx([[0.7, 0.3], [0.8, 0.2], [0.4, 0.6], [0.1, 0.9]], [1, 0, 0, 1])) == pytest.approx(0.75)
    # three classes: the mean of one-vs-rest AUROCs: class 0 8/8 pairs, class 1 7/8, class 2 6.5/8 (a tie
    # counts half)
    three = [[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.1, 0.4, 0.5]]
    got = METRICS.get("auroc")(ctx(three, [0, 0, 1, 2, 2, 1], classes=("a", "b", "c")))
    assert got == pytest.approx((1.0 + 7 / 8 + 6.5 / 8) / 3)
    assert METRICS.get("auroc")(ctx(P, [1, 1, 1, 1])) is None  # one class: no ranking to score


def test_per_class_accuracy_is_keyed_by_class_name():
    assert METRICS.get("per_class_accuracy")(ctx(P, Y)) == pytest.approx({"a": 1.0, "b": 2 / 3})


def test_nll_by_hand():
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.8)) / 4
    assert METRICS.get("nll")(ctx(P, Y)) == pytest.approx(expected)


def test_ece_by_hand():
    # confidences 0.9, 0.6, 0.7, 0.8 fall in four different bins of width 1/15;
    # |acc - conf| per bin: |1-0.9|, |0-0.6|, |1-0.7|, |1-0.8| -> mean weighted by 1/4 each.
    assert METRICS.get("ece")(ctx(P, Y)) == pytest.approx((0.1 + 0.6 + 0.3 + 0.2) / 4, abs=1e-6)
    perfect = ctx([[1.0, 0.0], [0.0, 1.0]], [0, 1])
    assert METRICS.get("ece")(perfect) == pytest.approx(0.0, abs=1e-7)


def test_evaluate_records_direction_from_the_registry():
    out = evaluate([NamedSpec(name=n) for n in ("accuracy", "nll", "per_class_accuracy")], ctx(P, Y))
    assert out["accuracy"] == {"value": pytest.approx(0.75), "higher_is_better": True}
    assert out["nll"]["higher_is_better"] is False
    assert set(out["per_class_accuracy"]["value"]) == {"a", "b"}
