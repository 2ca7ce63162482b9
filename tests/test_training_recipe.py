"""The training recipe's optimisation knobs (bench.config.TrainRecipe: lr_schedule, warmup,
label_smoothing; SGD with Nesterov momentum): each does what its comment says, and their defaults
train exactly as the plan's recipe did before they existed."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from bench import training
from bench.config import TrainRecipe
from bench.training import make_optimizer, make_scheduler, train_epoch


class Flat:
    """A task-model spec over plain float vectors: no augmentation, no statistics."""

    def prepare_batch(self, xb: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        return xb


def tiny_problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    X = 5 * torch.randn(40, 6)  # confident logits, so that smoothing changes the loss visibly
    Y = torch.randint(0, 3, (40,))
    return module, X, Y


def expected_lr(step: int, total: int, lr: float, warmup: float, kind: str) -> float:
    """OneCycleLR as TrainRecipe describes it: from lr/25 up to lr over the first warmup x total steps,
    then down to lr/25e4 at the last step, both along a half cosine (or a straight line)."""
    def anneal(a: float, b: float, pct: float) -> float:
        return a + (b - a) * pct if kind == "linear" else b + (a - b) * (1 + math.cos(math.pi * pct)) / 2

    peak = warmup * total - 1  # the step at which the warm-up reaches lr
    if step <= peak:
        return anneal(lr / 25, lr, step / peak)
    return anneal(lr, lr / 25e4, (step - peak) / (total - 1 - peak))


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_learning_rate_follows_the_one_cycle_schedule(kind):
    recipe = TrainRecipe(optimizer="sgd", lr=0.2, epochs=5, lr_schedule=kind, warmup=0.2)
    opt = make_optimizer(recipe, nn.Linear(2, 2).parameters())
    sched = make_scheduler(recipe, opt, steps_per_epoch=8)
    total = 5 * 8
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [expected_lr(s, total, 0.2, 0.2, kind) for s in range(total)], rtol=1e-6)
    assert max(lrs) == pytest.approx(0.2) and lrs[0] == pytest.approx(0.2 / 25) and lrs[-1] == pytest.approx(0.2 / 25e4)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]  # momentum is not cycled


def test_constant_schedule_has_no_scheduler():
    recipe = TrainRecipe()
    assert recipe.lr_schedule == "constant" and recipe.label_smoothing == 0.0
    assert make_scheduler(recipe, make_optimizer(recipe, nn.Linear(2, 2).parameters()), steps_per_epoch=8) is None


def test_fit_steps_the_schedule_once_per_optimizer_step(tiny_task, monkeypatch):
    used = []  # the learning rate of every optimizer step fit_classifier takes

    def spy(recipe, opt, steps_per_epoch):
        opt.register_step_pre_hook(lambda o, args, kwargs: used.append(o.param_groups[0]["lr"]))
        return make_scheduler(recipe, opt, steps_per_epoch)

    monkeypatch.setattr(training, "make_scheduler", spy)
    recipe = tiny_task.recipe.model_copy(update={"optimizer": "sgd", "lr": 0.05, "epochs": 4,
                                                 "lr_schedule": "cosine", "warmup": 0.25})
    tiny_task.fit(recipe=recipe)
    total = 4 * math.ceil(len(tiny_task.train) / recipe.batch_size)
    np.testing.assert_allclose(used, [expected_lr(s, total, 0.05, 0.25, "cosine") for s in range(total)], rtol=1e-6)


def test_swa_with_a_schedule_is_refused():
    with pytest.raises(ValidationError, match="lr_schedule constant with swa"):
        TrainRecipe(swa=True, lr_schedule="cosine")


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_label_smoothing_is_cross_entropy_against_smoothed_targets(smoothing):
    module, X, Y = tiny_problem()
    with torch.no_grad():
        logits = module(X)
    recipe = TrainRecipe(lr=1e-3, batch_size=len(X), label_smoothing=smoothing)
    opt = make_optimizer(recipe, module.parameters())
    # One batch: the returned loss is the loss before the only step.
    loss = train_epoch(module, opt, Flat(), X, Y, torch.arange(len(X)), len(X), torch.Generator(), recipe)
    assert loss == pytest.approx(float(F.cross_entropy(logits, Y, label_smoothing=smoothing)), rel=1e-6)
    targets = (1 - smoothing) * F.one_hot(Y, 3) + smoothing / 3  # what label smoothing means
    assert loss == pytest.approx(float(-(targets * F.log_softmax(logits, 1)).sum(1).mean()), rel=1e-6)
    if smoothing:
        assert loss != pytest.approx(float(F.cross_entropy(logits, Y)), rel=1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_default_knobs_train_bit_for_bit_as_before(optimizer):
    """The loop as it was before the knobs existed (plain cross-entropy, constant learning rate,
    SGD with Nesterov momentum 0.9) against train_epoch with the default knobs: identical weights."""
    recipe = TrainRecipe(optimizer=optimizer, lr=0.05, weight_decay=5e-4, batch_size=8)
    old, X, Y = tiny_problem()
    new, _, _ = tiny_problem()
    old_opt = (torch.optim.Adam(old.parameters(), lr=0.05, weight_decay=5e-4) if optimizer == "adam" else
               torch.optim.SGD(old.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4))
    new_opt = make_optimizer(recipe, new.parameters())
    sched = make_scheduler(recipe, new_opt, steps_per_epoch=5)
    for epoch in range(3):
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(order), 8):
            idx = order[start : start + 8]
            loss = F.cross_entropy(old(X[idx]), Y[idx])
            old_opt.zero_grad(set_to_none=True)
            loss.backward()
            old_opt.step()
        train_epoch(new, new_opt, Flat(), X, Y, order, 8, torch.Generator(), recipe, scheduler=sched)
    for a, b in zip(old.parameters(), new.parameters()):
        assert torch.equal(a, b)


def test_cifar10_reference_recipes_differ_in_optimisation_alone_and_reuse_the_suites_cells():
    """The recipe comparison behind the cifar10 suite's `train` comment: the earlier recipe keeps the
    suite's cost (epochs, batch size, selection) and changes only the optimiser, schedule, decay and
    smoothing; the suite recipe's real_only cells are the suite's own (same hash), so committed
    results count for it."""
    from bench.benchmarks.references.cifar10 import recipes, table
    from bench.cells import expand_cells
    from bench.config import KeyedSpec, load_suite

    suite = load_suite("cifar10", seeds=[0, 1])
    both = recipes(suite.train)
    changed = {k for k, v in both["suite"].model_dump().items() if both["earlier"].model_dump()[k] != v}
    assert changed == {"optimizer", "lr", "weight_decay", "lr_schedule", "warmup", "label_smoothing"}
    own = [c.hash for c in expand_cells(suite) if c.strategy.key == "real_only"]
    only = suite.model_copy(update={"train": both["suite"], "strategies": [KeyedSpec(name="real_only")]})
    assert [c.hash for c in expand_cells(only)] == own

    def record(seed: int, acc: float) -> dict:
        return {"metrics": {"accuracy": {"value": acc}}, "compute": {"wall_seconds": 300.0, "cpu_seconds": 299.0}}

    text = table({"suite": {0: record(0, 0.55), 1: record(1, 0.57)}, "earlier": {0: record(0, 0.48), 1: record(1, 0.50)}})
    assert "| suite | mean of 2 | 0.5600 ± 0.0141 |" in text
    assert "paired by seed over 2 seeds: mean +0.0700, min +0.0700, max +0.0700" in text
