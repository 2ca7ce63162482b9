"""Classification metrics on the test split: accuracy, macro-F1, expected calibration error,
negative log-likelihood and per-class accuracy, through torchmetrics' functional API; AUROC through
scikit-learn's roc_auc_score; and the chance level of accuracy (1/C) to read them against."""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_f1_score,
)

from bench.api import MODALITIES, EvalContext
from bench.registry import METRICS

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017


def _tensors(ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
    # torch.tensor copies: the labels may be a read-only memory map of the cached data set.
    return torch.tensor(np.asarray(ctx.probs, dtype=np.float64)), torch.tensor(np.asarray(ctx.y_true, dtype=np.int64))


@METRICS.register("accuracy", range=(0, 1), summary=0, chance="majority", higher_is_better=True, modalities=MODALITIES)
def accuracy(ctx: EvalContext) -> float:
    """Fraction of test examples whose arg-max prediction is the label."""
    p, y = _tensors(ctx)
    return float(multiclass_accuracy(p, y, num_classes=p.shape[1], average="micro"))


@METRICS.register("macro_f1", range=(0, 1), summary=2, higher_is_better=True, modalities=MODALITIES)
def macro_f1(ctx: EvalContext) -> float:
    """Unweighted mean over classes of the F1 score."""
    p, y = _tensors(ctx)
    return float(multiclass_f1_score(p, y, num_classes=p.shape[1], average="macro"))


@METRICS.register("ece", range=(0, 1), summary=3, higher_is_better=False, modalities=MODALITIES)
def ece(ctx: EvalContext) -> float:
    """Expected calibration error of the top-1 confidence, 15 equal-width bins (L1)."""
    p, y = _tensors(ctx)
    return float(multiclass_calibration_error(p, y, num_classes=p.shape[1], n_bins=ECE_BINS, norm="l1"))


@METRICS.register("nll", range=(0, float("inf")), summary=4, higher_is_better=False, modalities=MODALITIES)
def nll(ctx: EvalContext) -> float:
    """Mean negative log-likelihood of the label (nats), probabilities clipped at 1e-12."""
    p, y = _tensors(ctx)
    return float(torch.nn.functional.nll_loss(p.clamp_min(1e-12).log(), y))


@METRICS.register("auroc", range=(0, 1), chance="ranking", higher_is_better=True, modalities=MODALITIES)
def auroc(ctx: EvalContext) -> float | None:
    """Area under the ROC curve: for two classes of the second class's probability (the positive class,
    e.g. pneumonia), for more the unweighted mean of the one-vs-rest AUROCs (MedMNIST's AUC). It reads
    the whole predicted ranking, not one threshold, so a model's score moves less with a small shift of
    its decision boundary than (balanced) accuracy does. None where the test split holds one class."""
    from sklearn.metrics import roc_auc_score

    p, y = np.asarray(ctx.probs, dtype=np.float64), np.asarray(ctx.y_true, dtype=np.int64)
    if len(np.unique(y)) < 2:
        return None
    if p.shape[1] == 2:
        return float(roc_auc_score(y, p[:, 1]))
    present = np.unique(y)  # one-vs-rest over the classes the test split holds
    return float(np.mean([roc_auc_score(y == k, p[:, k]) for k in present]))


@METRICS.register("per_class_accuracy", range=(0, 1), higher_is_better=True, modalities=MODALITIES)
def per_class_accuracy(ctx: EvalContext) -> dict[str, float]:
    """Accuracy within each true class (the per-class recall), keyed by class name."""
    p, y = _tensors(ctx)
    acc = multiclass_accuracy(p, y, num_classes=p.shape[1], average=None)
    return {name: float(a) for name, a in zip(ctx.class_names, acc)}


@METRICS.register("chance_accuracy", range=(0, 1), higher_is_better=True, modalities=MODALITIES)
def chance_accuracy(ctx: EvalContext) -> float:
    """A reference level, not a result: the expected accuracy of guessing uniformly at random among
    the C classes, 1/C (MedQA's four options: 0.25), whatever the test labels' mix. Reported beside
    `accuracy` so that a score can be read against chance; it is the same for every strategy."""
    return 1.0 / np.asarray(ctx.probs).shape[1]
