"""Quality and privacy of the synthetic rows a strategy adds to a table (`ctx.synthetic`), measured
against the real training budget (`task.train`, the rows the generator was fitted on):

| metric | direction | what |
|---|---|---|
| `sdmetrics_quality` | higher, 1 best | sdmetrics QualityReport score: mean of Column Shapes and Column Pair Trends |
| `detection_auc` | lower, 0.5 best | cross-validated ROC AUC of a classifier telling synthetic rows from real ones |
| `dcr` | higher | median distance from a synthetic row to its closest real training row (0: copies) |
| `dcr_ratio` | higher up to ~1 | `dcr` over the same median for real held-out test rows (< 1: memorisation risk) |

A strategy without synthetic rows, or data without a table schema, gets None (not applicable). Every
row subset is drawn from `task.seed`, so a cell's values are reproducible. The label is part of a row
throughout (a synthetic row whose features do not fit its label is a flaw); note that a targeted
strategy shifts the synthetic rows (features and class mix) away from the real distribution on purpose,
so compare these numbers against random synthesis with the same generator, not against 0.5 or 1 alone.

- `sdmetrics_quality`: the unified `sdmetrics.reports.QualityReport` (the single-table class is
  deprecated in 0.32) on both tables as data frames (`schema.to_frame`, categories by name, the label as
  a categorical column). Column Shapes averages the KS complement (numeric) and the TV complement
  (categorical) per column; Column Pair Trends the correlation or contingency similarity per pair. The
  report by default scores only pairs whose real correlation exceeds 0.5 (association 0.3), so which
  pairs count would change with each seed's real subset (and with none the property is NaN); its
  thresholds are set to 0 here so that every pair counts, the classic SDV score.
- `detection_auc`: a classifier two-sample test (Lopez-Paz & Oquab 2017). Real rows are class 0,
  synthetic rows class 1, the larger side subsampled to the smaller (at most `samples` each), and the
  mean ROC AUC over a seeded stratified `folds`-fold split is returned. The default detector,
  histogram gradient boosting, sees marginal shapes and interactions; `model="logistic"` is cheaper
  but only sees differences of the encoded features' means (a wrong variance or a wrong correlation
  with the right means goes unseen). An AUC below 0.5 is chance-level noise, not "more real than real".
  It applies to text too (the only metric here that does): the same test on the 384-d MiniLM
  embeddings (benchmarks/models/minilm_encoder.py) of synthetic and real training examples instead of encoded
  rows.
- `dcr` / `dcr_ratio`: nearest-neighbour Euclidean distances in the encoded space below, from at most
  `samples` synthetic rows and from as many real test rows (fresh draws the generator never saw) to the
  real training rows. A ratio near 1 is the ideal (synthetic rows are as close to the training rows as
  new real rows are); near 0 means near-copies. The test split keeps its natural class mix while the
  budget and the synthetic rows are drawn per class, which can move the ratio for imbalanced data.

Encoding (one helper for detection and DCR): categorical columns and the label one-hot over their full
category lists (a differing category adds sqrt(2) to a distance), numeric columns standardised by the
real training rows' mean and std, rather than by the schema's public bounds, which are missing for
some columns and so wide for others (capital gains up to 99999) that they would squash the variation.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bench.api import EvalContext, Measured
from bench.errors import BenchError
from bench.registry import METRICS
from bench.table import LABEL_COLUMN

TABULAR = ("tabular",)
TABLE = "table"  # the table's name in sdmetrics' multi-table-shaped metadata


def _schema(ctx: EvalContext) -> Any:
    """The table schema, or None where these metrics do not apply."""
    schema = getattr(ctx.task.data, "schema", None)
    return None if ctx.synthetic is None or len(ctx.synthetic) == 0 else schema


def _subset(split: Any, n: int, rng: np.random.Generator) -> Any:
    """At most `n` rows of `split`, a seeded subset without replacement."""
    if n < 1:
        raise BenchError(f"table-quality metrics need a positive sample count, got {n}")
    return split if len(split) <= n else split.subset(np.sort(rng.choice(len(split), n, replace=False)))


def _encode(ctx: EvalContext, schema: Any, *splits: Any) -> list[np.ndarray]:
    """Each split's rows (features and label) in one numeric space fitted on the real training rows:
    categoricals and the label one-hot, numerics standardised."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat, label = schema.categorical, len(schema.columns)  # the label is appended as the last column

    def table(split: Any) -> np.ndarray:
        t = np.column_stack([np.asarray(split.x, dtype=np.float64), np.asarray(split.y, dtype=np.float64)])
        t[:, cat + [label]] = np.rint(t[:, cat + [label]])  # codes as exact whole numbers
        return t

    categories = [np.arange(len(schema.columns[i].categories), dtype=np.float64) for i in cat]
    categories.append(np.arange(len(ctx.class_names), dtype=np.float64))
    encoder = ColumnTransformer([
        ("categorical", OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False), cat + [label]),
        ("numeric", StandardScaler(), schema.numeric),
    ]).fit(table(ctx.task.train))
    return [encoder.transform(table(s)) for s in splits]


@METRICS.register("sdmetrics_quality", range=(0, 1), higher_is_better=True, modalities=TABULAR, needs="synthetic")
def sdmetrics_quality(ctx: EvalContext, samples: int = 1000) -> float | None:
    """sdmetrics' overall quality score of at most `samples` synthetic rows against at most `samples`
    real training rows, in [0, 1]."""
    schema = _schema(ctx)
    if schema is None:
        return None
    try:
        from sdmetrics.reports import QualityReport
    except ImportError:
        raise BenchError("sdmetrics_quality needs sdmetrics (pip install -e '.[tabular]')") from None
    rng = np.random.default_rng(ctx.task.seed)
    real, synthetic = (_subset(s, samples, rng) for s in (ctx.task.train, ctx.synthetic))
    frames = [{TABLE: schema.to_frame(s.x, s.y, ctx.class_names)} for s in (real, synthetic)]
    columns = {c.name: {"sdtype": "numerical" if c.kind == "numeric" else "categorical"} for c in schema.columns}
    columns[LABEL_COLUMN] = {"sdtype": "categorical"}
    report = QualityReport()
    report.real_correlation_threshold = report.real_association_threshold = 0  # score every pair
    report.generate(*frames, {"tables": {TABLE: {"columns": columns}}}, verbose=False)
    return float(report.get_score())


def _detector(model: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if model == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=seed)
    if model == "logistic":
        return LogisticRegression(max_iter=1000)
    raise BenchError(f"detection_auc: unknown model {model!r} (hist_gradient_boosting, logistic)")


@METRICS.register("detection_auc", range=(0, 1), higher_is_better=False, modalities=("tabular", "text"), needs="synthetic")
def detection_auc(ctx: EvalContext, model: str = "hist_gradient_boosting", samples: int = 1000,
                  folds: int = 5) -> Measured | None:
    """Mean cross-validated ROC AUC of `model` telling balanced real and synthetic rows apart; 0.5
    means indistinguishable. Null, with the reason, with fewer than two rows a side, or when the detector
    learns nothing (`_two_sample_auc`; pass model logistic for a few dozen rows). Records the rows a side. Text: the rows are the MiniLM
    embeddings (minilm_encoder.task_embeddings) of the synthetic examples (strings and embedding-space ones)
    and of the real training texts, the label left out."""
    text = ctx.task.data.modality == "text"
    schema = None if text else _schema(ctx)
    if ctx.synthetic is None or len(ctx.synthetic) == 0 or (schema is None and not text):
        return None
    detector = _detector(model, ctx.task.seed)
    rng = np.random.default_rng(ctx.task.seed)
    n = min(len(ctx.task.train), len(ctx.synthetic), samples)  # rows a side
    counts = {"synthetic": n, "reference": n}
    if n < 2:
        return Measured(None, counts, "detection AUC needs two rows a side")
    real, synthetic = _subset(ctx.task.train, n, rng), _subset(ctx.synthetic, n, rng)
    if text:
        from ..benchmarks.models.minilm_encoder import task_embeddings

        device = str(getattr(ctx.task, "device", "cpu"))
        real, synthetic = task_embeddings(ctx.task, real.x, device), task_embeddings(ctx.task, synthetic.x, device)
    else:
        real, synthetic = _encode(ctx, schema, real, synthetic)
    auc = _two_sample_auc(real, synthetic, detector, folds, ctx.task.seed)
    return Measured(auc, counts, None if auc is not None else f"the {model} detector learned nothing from {n} rows a side")


def _two_sample_auc(real: np.ndarray, synthetic: np.ndarray, detector: Any, folds: int, seed: int) -> float | None:
    """Classifier two-sample test on equally many real (class 0) and synthetic (class 1) feature
    rows: the mean ROC AUC of `detector` over a seeded stratified `folds`-fold split. None when the
    detector scores every held-out row alike in every fold: it learned nothing (histogram gradient
    boosting, with its 20 rows per leaf, cannot split fewer than 40 training rows), and the 0.5 that
    roc_auc gives such scores would read as "indistinguishable"."""
    from sklearn.model_selection import StratifiedKFold, cross_validate

    def spread(estimator: Any, x_test: np.ndarray, _: np.ndarray) -> float:
        """Range of the scores the roc_auc scorer reads (the decision function where there is one)."""
        scores = (estimator.decision_function(x_test) if hasattr(estimator, "decision_function")
                  else estimator.predict_proba(x_test)[:, 1])
        return float(np.ptp(scores))

    n = len(real)
    x, y = np.vstack([real, synthetic]), np.repeat([0, 1], n)
    cv = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    per_fold = cross_validate(detector, x, y, cv=cv, scoring={"auc": "roc_auc", "spread": spread})
    return float(np.mean(per_fold["test_auc"])) if np.any(per_fold["test_spread"] > 0) else None


def _dcr_medians(ctx: EvalContext, samples: int) -> tuple[float, float] | None:
    """Median distance to the closest real training row of (synthetic rows, real held-out rows)."""
    from sklearn.neighbors import NearestNeighbors

    schema = _schema(ctx)
    if schema is None:
        return None
    rng = np.random.default_rng(ctx.task.seed)
    synthetic = _subset(ctx.synthetic, samples, rng)
    holdout = _subset(ctx.task.test, len(synthetic), rng)
    train, synthetic, holdout = _encode(ctx, schema, ctx.task.train, synthetic, holdout)
    # A ball tree computes exact distances (the brute-force path's dot-product trick leaves ~1e-7
    # where a copy should give 0).
    nn = NearestNeighbors(n_neighbors=1, algorithm="ball_tree").fit(train)
    return tuple(float(np.median(nn.kneighbors(a)[0][:, 0])) for a in (synthetic, holdout))


@METRICS.register("dcr", range=(0, float("inf")), higher_is_better=True, modalities=TABULAR, needs="synthetic")
def dcr(ctx: EvalContext, samples: int = 1000) -> float | None:
    """Median distance from a synthetic row to its closest real training row (encoded space: one-hot
    categories, numerics in training standard deviations); 0 when the rows are copies."""
    medians = _dcr_medians(ctx, samples)
    return None if medians is None else medians[0]


@METRICS.register("dcr_ratio", higher_is_better=True, modalities=TABULAR, needs="synthetic")
def dcr_ratio(ctx: EvalContext, samples: int = 1000) -> float | None:
    """`dcr` over the median distance from real held-out rows to the training rows: ~1 ideal, < 1
    synthetic rows sit closer to the training rows than new real rows do. None when held-out rows
    coincide with training rows (a zero median)."""
    medians = _dcr_medians(ctx, samples)
    if medians is None or medians[1] == 0:
        return None
    return medians[0] / medians[1]
