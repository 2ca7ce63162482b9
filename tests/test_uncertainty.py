from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.method.uncertainty import Uncertainty, ensemble, head_only_dropout, mc_dropout


def test_scores_by_hand():
    # Two passes over one example with two classes: p = (0.8, 0.2) and (0.4, 0.6).
    u = Uncertainty(np.array([[[0.8, 0.2]], [[0.4, 0.6]]]))
    np.testing.assert_allclose(u.mean_probs, [[0.6, 0.4]])
    h = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    assert u.entropy[0] == pytest.approx(h)
    assert u.variance[0] == pytest.approx(0.04 + 0.04)  # Var over passes of each class's probability, summed
    h_each = [-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)), -(0.4 * math.log(0.4) + 0.6 * math.log(0.6))]
    assert u.bald[0] == pytest.approx(h - np.mean(h_each))
    assert u.score()[0] == pytest.approx(h + 0.08)
    with pytest.raises(ValueError, match="unknown uncertainty score"):
        u.score("margin")


def test_agreeing_passes_have_no_variance_or_mutual_information():
    u = Uncertainty(np.tile(np.array([[[0.5, 0.5]]]), (5, 1, 1)))
    assert u.variance[0] == pytest.approx(0) and u.bald[0] == pytest.approx(0, abs=1e-12)
    assert u.entropy[0] == pytest.approx(math.log(2))


def test_fast_and_naive_mc_dropout_agree(tiny_task):
    clf = tiny_task.fit()
    assert head_only_dropout(clf.module)
    x = tiny_task.test.x
    fast = mc_dropout(clf, x, passes=400, fast=True, seed=0)
    naive = mc_dropout(clf, x, passes=400, fast=False, seed=0)
    assert fast.samples.shape == naive.samples.shape == (400, len(x), 3)
    np.testing.assert_allclose(fast.mean_probs, naive.mean_probs, atol=0.03)
    np.testing.assert_allclose(fast.variance, naive.variance, atol=0.02)
    assert fast.variance.mean() > 1e-4  # dropout is on: the passes differ
    # BatchNorm stays in eval mode and the model is left in eval mode.
    assert not clf.module.training


def test_mc_dropout_without_dropout_is_deterministic(tiny_task):
    clf = tiny_task.fit()
    for m in clf.module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    u = mc_dropout(clf, tiny_task.test.x, passes=5)
    assert np.allclose(u.variance, 0, atol=1e-10)
    np.testing.assert_allclose(u.mean_probs, clf.predict_proba(tiny_task.test.x), atol=1e-5)


def test_ensemble_members_disagree_where_seeds_differ(tiny_task):
    members = [tiny_task.fit(seed=s) for s in range(3)]
    u = ensemble(members, tiny_task.test.x)
    assert u.samples.shape == (3, len(tiny_task.test), 3)
    assert u.variance.max() > 0
