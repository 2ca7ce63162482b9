from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BenchError
from bench.task import Task, split_budget


def test_budget_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), 50)
    tr, va, pool = split_budget(y, budget=7, val_per_class=3, seed=1)
    assert np.bincount(y[tr]).tolist() == [7] * 4
    assert np.bincount(y[va]).tolist() == [3] * 4
    assert len(pool) == 200 - 40
    assert not set(tr) & set(va) and not set(tr) & set(pool) and not set(va) & set(pool)
    tr2, va2, _ = split_budget(y, budget=7, val_per_class=3, seed=1)
    assert tr.tolist() == tr2.tolist() and va.tolist() == va2.tolist()
    tr3, _, _ = split_budget(y, budget=7, val_per_class=3, seed=2)
    assert tr.tolist() != tr3.tolist()


def test_budget_larger_than_a_class_is_an_error():
    y = np.repeat(np.arange(2), 10)
    with pytest.raises(BenchError, match="needs 12 examples of class 0 but the split has only 10"):
        split_budget(y, budget=8, val_per_class=4, seed=0)


def test_task_uses_a_fixed_stratified_test_subset(tiny_data, tiny_task):
    t1 = Task.build(tiny_data, 10, 5, seed=3, model=tiny_task.model, recipe=tiny_task.recipe, test_per_class=4)
    t2 = Task.build(tiny_data, 10, 5, seed=4, model=tiny_task.model, recipe=tiny_task.recipe, test_per_class=4)
    assert np.bincount(t1.test.y).tolist() == [4, 4, 4]
    assert np.array_equal(t1.test.x, t2.test.x)  # every seed is scored on the same images
    assert len(tiny_task.test) == len(tiny_data.test)


def test_training_learns_a_visible_signal(tiny_task):
    clf = tiny_task.fit()
    p = clf.predict_proba(tiny_task.test.x)
    assert p.shape == (len(tiny_task.test), 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert (p.argmax(1) == tiny_task.test.y).mean() > 0.8  # chance is 1/3
    assert len(clf.history) == 8 and "val_loss" in clf.history[0]
    assert clf.best_epoch == best_by_selection(clf.history, tiny_task.recipe)


def best_by_selection(history: list[dict], recipe) -> int:
    """The epoch model selection should return: the highest validation accuracy (ties: the lower loss)
    among the epochs from select_from x epochs on."""
    first = int(recipe.select_from * recipe.epochs)
    return max(range(first, len(history)), key=lambda e: (history[e]["val_accuracy"], -history[e]["val_loss"]))


def test_training_is_reproducible_for_a_seed(tiny_task):
    a = tiny_task.fit().predict_proba(tiny_task.test.x)
    b = tiny_task.fit().predict_proba(tiny_task.test.x)
    c = tiny_task.fit(seed=1).predict_proba(tiny_task.test.x)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a, c, atol=1e-4)


def test_class_weighted_sampling_draws_by_weight(tiny_task):
    # All weight on class 0: the network only ever sees class 0, so it predicts class 0 everywhere.
    w = (tiny_task.train.y == 0).astype(float)
    clf = tiny_task.fit(sample_weight=w)
    assert (clf.predict_proba(tiny_task.test.x).argmax(1) == 0).mean() > 0.9


def test_early_stopping_ends_training_after_patience_epochs_without_improvement(tiny_task):
    recipe = tiny_task.recipe.model_copy(update={"epochs": 60, "early_stopping_patience": 2, "lr": 0.05})
    clf = tiny_task.fit(recipe=recipe)
    assert len(clf.history) < 60
    best = best_by_selection(clf.history, recipe)
    assert len(clf.history) == best + 3  # the best epoch, then two without a better one
    assert clf.best_epoch == best


def test_swa_averages_the_last_epochs(tiny_task):
    recipe = tiny_task.recipe.model_copy(update={"epochs": 8, "swa": True, "swa_start": 0.5, "swa_lr": 1e-3})
    clf = tiny_task.fit(recipe=recipe)
    from torch.optim.swa_utils import AveragedModel

    assert not isinstance(clf.module, AveragedModel)  # the averaged network itself is returned
    assert clf.best_epoch is None  # no per-epoch selection with SWA
    p = clf.predict_proba(tiny_task.test.x)
    assert (p.argmax(1) == tiny_task.test.y).mean() > 0.6
    plain = tiny_task.fit(recipe=recipe.model_copy(update={"swa": False}))
    assert not np.allclose(p, plain.predict_proba(tiny_task.test.x))


def test_kl_term_pulls_towards_the_teacher(tiny_task):
    # A teacher that puts all mass on class 0 for every real example: with a large weight the
    # network follows the teacher rather than the labels.
    teacher = np.zeros((len(tiny_task.train), 3))
    teacher[:, 0] = 1.0
    clf = tiny_task.fit(teacher=teacher, kl_weight=50.0)
    assert (clf.predict_proba(tiny_task.test.x).argmax(1) == 0).mean() > 0.9
    free = tiny_task.fit(teacher=teacher, kl_weight=0.0)
    assert (free.predict_proba(tiny_task.test.x).argmax(1) == 0).mean() < 0.6
