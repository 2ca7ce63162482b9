"""PGD robust accuracy (metrics.robustness): exact values on a classifier whose attack outcome is known
by hand, and the invariants on a trained tiny CNN (robust <= clean, eps = 0 gives clean, the network
left as it was)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from bench.api import EvalContext, Split
from bench.benchmarks.models.networks import SmallCNN
from bench.config import TrainRecipe
from bench.metrics.robustness import attack_subset
from bench.registry import METRICS

pgd = METRICS.get("pgd_accuracy")
clean = METRICS.get("pgd_clean_accuracy")


class MeanBrightness(nn.Module):
    """Class 1 when an image's mean pixel (in [0, 1]) is above 0.5: the loss gradient has the same
    sign at every pixel, so an L-inf attack of radius eps shifts the mean by exactly eps."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0))  # torchattacks finds the device from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3)) - 0.5
        return self.scale * torch.stack([-m, m], dim=1)


def hand_ctx() -> EvalContext:
    # Constant 4x4 grey images; class 1 iff value > 127.5. With eps = 8/255 a correct prediction
    # survives iff the value is at least 8 levels from the boundary: v <= 119 or v >= 136.
    values = np.array([100, 119, 120, 127, 128, 135, 136, 200, 110, 150])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])  # the last two are misclassified even when clean
    x = np.broadcast_to(values[:, None, None, None], (len(values), 4, 4, 1)).astype(np.uint8).copy()
    classifier = SimpleNamespace(module=MeanBrightness().eval(), spec=SmallCNN(), recipe=TrainRecipe(),
                                 device=torch.device("cpu"))
    return EvalContext(task=SimpleNamespace(test=Split(x, labels)), classifier=classifier, y_true=labels,
                       probs=np.full((len(labels), 2), 0.5), synthetic=None)


def test_pgd_accuracy_by_hand():
    ctx = hand_ctx()
    assert clean(ctx) == pytest.approx(8 / 10)
    # Clean-correct and at least 8/255 from the boundary: 100, 119, 136, 200.
    assert pgd(ctx) == pytest.approx(4 / 10)
    assert pgd(ctx, random_start=False) == pytest.approx(4 / 10)
    # eps = 20/255: only 100 and 200 survive; eps = 0: nothing changes.
    assert pgd(ctx, eps=20 / 255, alpha=4 / 255) == pytest.approx(2 / 10)
    assert pgd(ctx, eps=0.0) == clean(ctx)
    # A subset of 5 of the 10 images, the same one for both metrics.
    idx = attack_subset(10, 5)
    survives = np.isin(np.arange(10), [0, 1, 6, 7])
    correct = np.arange(10) < 8
    assert clean(ctx, samples=5) == pytest.approx(correct[idx].mean())
    assert pgd(ctx, samples=5) == pytest.approx(survives[idx].mean())


def test_attack_subset_is_fixed_and_sorted():
    a = attack_subset(1000, 50)
    assert np.array_equal(a, attack_subset(1000, 50)) and np.array_equal(a, np.sort(a)) and len(set(a)) == 50
    assert not np.array_equal(a, attack_subset(1000, 50, seed=1))
    assert np.array_equal(attack_subset(30, 500), np.arange(30))  # more samples than examples: all of them


@pytest.fixture
def trained(tiny_task):
    clf = tiny_task.fit()
    return EvalContext(task=tiny_task, classifier=clf, y_true=tiny_task.test.y,
                       probs=clf.predict_proba(tiny_task.test.x), synthetic=None)


def test_trained_model_robust_accuracy_at_most_clean(trained):
    before = {k: v.clone() for k, v in trained.classifier.module.state_dict().items()}
    c = clean(trained)
    r = pgd(trained)
    assert 0 <= r <= c <= 1 and c > 0.6  # the tiny task is easy (chance 1/3)
    assert pgd(trained) == r  # seeded: the same value again
    assert pgd(trained, eps=0.0) == c
    assert pgd(trained, eps=0.5, alpha=0.1) < c  # a large enough attack must succeed
    # The attack leaves the network in eval mode with its weights and BatchNorm statistics unchanged.
    assert not trained.classifier.module.training
    after = trained.classifier.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bf16_channels_last_recipe_is_attacked_in_float32(tiny_task):
    recipe = tiny_task.recipe.model_copy(update={"bf16_autocast": True, "channels_last": True})
    clf = tiny_task.fit(recipe=recipe)
    ctx = EvalContext(task=tiny_task, classifier=clf, y_true=tiny_task.test.y,
                      probs=clf.predict_proba(tiny_task.test.x), synthetic=None)
    c = clean(ctx)
    assert pgd(ctx, eps=0.0) == c
    assert pgd(ctx) <= c


def test_registered_for_images_only():
    for name in ("pgd_accuracy", "pgd_clean_accuracy"):
        meta = METRICS.meta(name)
        assert meta["modalities"] == ("image",) and meta["higher_is_better"] is True


def test_classifier_without_a_torch_network_gives_none():
    ctx = hand_ctx()
    ctx.classifier = SimpleNamespace(predict_proba=lambda x: None)
    assert pgd(ctx) is None and clean(ctx) is None
