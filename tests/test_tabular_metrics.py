"""Fairness, synthetic-data audit, quality and privacy metrics of tables (metrics.fairness,
metrics.table_quality), on small tables built here whose right answers are known by construction."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench.api import EvalContext, Measured, Split
from bench.config import NamedSpec
from bench.evaluation import evaluate
from bench.registry import METRICS
from bench.table import Column, Sensitive, TableSchema

SCHEMA = TableSchema(
    columns=(
        Column("age", "numeric", integer=True, low=17, high=90),
        Column("sex", "categorical", categories=("F", "M")),
        Column("hours", "numeric", low=0, high=99),
        Column("work", "categorical", categories=("private", "public", "self")),
    ),
    sensitive={"sex": Sensitive(column="sex")},
)
CLASSES = ["no", "yes"]
TABLE_METRICS = ("sdmetrics_quality", "detection_auc", "dcr", "dcr_ratio")


def rows(n: int, seed: int, shift: float = 0.0) -> Split:
    """`n` rows, half of each class; the label moves hours and work, `shift` (in standard deviations)
    moves both numeric columns and tilts the work categories."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    age = np.rint(rng.normal(40 + 10 * shift, 10, n))
    hours = rng.normal(35 + 10 * y + 8 * shift, 8, n)
    p_work = np.where(y[:, None] == 1, [0.4, 0.2, 0.4], [0.6, 0.3, 0.1])
    if shift:
        p_work = np.tile([0.05, 0.15, 0.8], (n, 1))
    work = (rng.random(n)[:, None] > p_work.cumsum(1)).sum(1)
    sex = rng.integers(0, 2, n)
    x = np.column_stack([age, sex, hours, work]).astype(np.float64)
    return Split(x, y, groups=SCHEMA.groups(x))


def context(synthetic: Split | None = None, probs: np.ndarray | None = None, test: Split | None = None,
            classes: list[str] = CLASSES, schema: TableSchema | None = SCHEMA) -> EvalContext:
    test = rows(300, seed=1) if test is None else test
    task = SimpleNamespace(train=rows(300, seed=0), test=test, seed=0,
                           data=SimpleNamespace(modality="tabular", schema=schema, classes=classes))
    if probs is None:
        probs = np.full((len(test), len(classes)), 1 / len(classes))
    return EvalContext(task=task, classifier=None, y_true=test.y, probs=probs, synthetic=synthetic)


def probs_of(pred: np.ndarray) -> np.ndarray:
    return np.eye(2)[np.asarray(pred, dtype=int)]


def metric(name: str, ctx: EvalContext, **params):
    """The metric's value (a synthetic-quality metric returns it in a Measured, with its sample counts)."""
    out = METRICS.get(name)(ctx, **params)
    return out.value if isinstance(out, Measured) else out


# ---- fairness of predictions -------------------------------------------------------------------

def test_predicting_positive_for_one_group_only_is_maximally_unfair():
    test = rows(300, seed=1)
    ctx = context(probs=probs_of(test.groups["sex"] == "F"), test=test)
    assert metric("demographic_parity_difference", ctx, attribute="sex") == pytest.approx(1.0)
    assert metric("demographic_parity_ratio", ctx, attribute="sex") == pytest.approx(0.0)
    # TPR 1 for F, 0 for M (and FPR alike): the gap is 1
    assert metric("equalized_odds_difference", ctx, attribute="sex") == pytest.approx(1.0)


def test_group_blind_predictions_on_balanced_groups_are_fair():
    # 2000 rows per group, each group half positive; predictions are coin flips whatever the group
    groups = np.repeat(["F", "M"], 2000)
    y = np.tile(np.repeat([0, 1], 1000), 2)
    pred = np.random.default_rng(3).integers(0, 2, len(y))
    test = Split(np.zeros((len(y), 4)), y, groups={"sex": groups})
    ctx = context(probs=probs_of(pred), test=test)
    assert metric("demographic_parity_difference", ctx, attribute="sex") < 0.05
    assert metric("demographic_parity_ratio", ctx, attribute="sex") > 0.9
    # with predictions equal to the labels, whose rate is the same in both groups, parity is exact
    exact = context(probs=probs_of(y), test=test)
    assert metric("demographic_parity_difference", exact, attribute="sex") == pytest.approx(0.0)
    assert metric("demographic_parity_ratio", exact, attribute="sex") == pytest.approx(1.0)


def test_equalized_odds_of_a_perfect_predictor_is_zero_even_with_unequal_base_rates():
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])  # F: 3/4 positive, M: 1/4
    test = Split(np.zeros((8, 4)), y, groups={"sex": np.array(list("FFFFMMMM"))})
    ctx = context(probs=probs_of(y), test=test)
    assert metric("equalized_odds_difference", ctx, attribute="sex") == pytest.approx(0.0)
    assert metric("demographic_parity_difference", ctx, attribute="sex") == pytest.approx(0.5)


def test_prediction_fairness_does_not_apply_without_the_attribute_or_to_multiclass():
    test = rows(300, seed=1)
    for name in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"):
        assert metric(name, context(probs=probs_of(test.y), test=test), attribute="race") is None
        three = context(probs=np.full((300, 3), 1 / 3), test=test, classes=["a", "b", "c"])
        assert metric(name, three, attribute="sex") is None


def test_parity_ratio_is_none_when_nobody_is_predicted_positive():
    ctx = context(probs=probs_of(np.zeros(300)))
    assert metric("demographic_parity_ratio", ctx, attribute="sex") is None
    assert metric("demographic_parity_difference", ctx, attribute="sex") == pytest.approx(0.0)


# ---- synthetic-data audit ----------------------------------------------------------------------

def test_audit_sees_label_bias_the_generator_adds():
    synthetic = rows(200, seed=5)
    synthetic.y = (synthetic.groups["sex"] == "F").astype(np.int64)  # every F row positive, every M row negative
    # the real budget: labels exactly balanced within each sex
    ctx = context(synthetic=synthetic)
    train = ctx.task.train
    train.x[:, 1] = np.tile([0, 0, 1, 1], 75)  # sex F, F, M, M ...
    train.y = np.tile([0, 1, 0, 1], 75)        # ... each sex half positive
    diff = metric("synthetic_parity_difference", ctx, attribute="sex")
    assert diff == pytest.approx({"synthetic": 1.0, "real": 0.0, "shift": 1.0})
    ratio = metric("synthetic_disparate_impact", ctx, attribute="sex")
    assert ratio == pytest.approx({"synthetic": 0.0, "real": 1.0, "shift": -1.0})
    # through evaluate: the direction comes from the registry, the entries stay floats
    out = evaluate([NamedSpec(name="synthetic_parity_difference", params={"attribute": "sex"})], ctx)
    assert out["synthetic_parity_difference"]["higher_is_better"] is False
    assert out["synthetic_parity_difference"]["value"] == pytest.approx({"synthetic": 1.0, "real": 0.0, "shift": 1.0})


def test_audit_does_not_apply_without_synthetic_rows_schema_or_attribute():
    for name in ("synthetic_parity_difference", "synthetic_disparate_impact"):
        assert metric(name, context(synthetic=None), attribute="sex") is None
        assert metric(name, context(synthetic=rows(50, seed=5), schema=None), attribute="sex") is None
        assert metric(name, context(synthetic=rows(50, seed=5)), attribute="race") is None


# ---- quality and privacy of synthetic rows ------------------------------------------------------

@pytest.mark.parametrize("name", TABLE_METRICS)
def test_table_metrics_do_not_apply_without_synthetic_rows_or_schema(name):
    assert metric(name, context(synthetic=None)) is None
    assert metric(name, context(synthetic=rows(50, seed=5), schema=None)) is None


@pytest.mark.parametrize("model", ["hist_gradient_boosting", "logistic"])
def test_detection_auc_is_chance_for_the_same_distribution_and_high_for_a_shifted_one(model):
    same = metric("detection_auc", context(synthetic=rows(300, seed=7)), model=model)
    shifted = metric("detection_auc", context(synthetic=rows(300, seed=7, shift=2.0)), model=model)
    assert 0.35 < same < 0.65
    assert shifted > 0.9


def test_detection_auc_is_reproducible_and_rejects_an_unknown_model():
    ctx = context(synthetic=rows(500, seed=7))  # more synthetic rows than real: subsampled to 300
    assert metric("detection_auc", ctx) == metric("detection_auc", ctx)
    with pytest.raises(Exception, match="unknown model"):
        metric("detection_auc", ctx, model="svm")


def test_dcr_of_copies_is_zero_and_of_fresh_draws_matches_held_out_rows():
    ctx = context()
    ctx.synthetic = ctx.task.train.subset(np.arange(150))  # exact copies of training rows
    assert metric("dcr", ctx) == 0.0
    assert metric("dcr_ratio", ctx) == 0.0
    fresh = context(synthetic=rows(300, seed=9))  # same distribution as the training and test rows
    assert metric("dcr", fresh) > 0
    assert 0.7 < metric("dcr_ratio", fresh) < 1.4
    # the encoding is shared: a far shift moves the synthetic rows away from every training row
    assert metric("dcr_ratio", context(synthetic=rows(300, seed=9, shift=3.0))) > 1.4


def test_sdmetrics_quality_prefers_the_same_distribution():
    same = metric("sdmetrics_quality", context(synthetic=rows(300, seed=7)))
    shifted = metric("sdmetrics_quality", context(synthetic=rows(300, seed=7, shift=1.5)))
    assert 0.0 <= shifted < same <= 1.0
    assert same > 0.8
