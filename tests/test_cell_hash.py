"""A cell's config hash covers exactly what the cell uses, component versions included: a change to
something a cell does not use leaves it up to date, a change to something it uses (a parameter or a
version bump) makes it stale, and two versions of one suite never share a result path."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from tiny_suite import GOOD

from bench.cells import expand_cells
from bench.config import validate_suite
from bench.registry import GENERATORS, METRICS, MODELS, STRATEGIES
from bench.results import cell_path

SUITE = {
    "name": "hashes", "version": 1, "primary_metric": "accuracy", "datasets": ["cifar10"], "budgets": [10],
    "val_per_class": 5, "model": {"name": "small_cnn", "params": {"width": 8}},
    "synthetic": {"generator": {"name": "pca_gmm", "params": {"components": 8}}, "budget_per_class": 10},
    "strategies": ["real_only", "random_synthetic", "smote", {"name": "dp_gan", "params": {"epochs": 1}},
                   "active_synthesis"],
    "metrics": ["accuracy", "ece"], "seeds": [0],
}


def hashes(raw: dict | None = None) -> dict[str, str]:
    cells = expand_cells(validate_suite(copy.deepcopy(raw or SUITE), source="test"))
    return {c.strategy.key: c.hash for c in cells}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def bump(monkeypatch, registry, name: str) -> None:
    caps = registry.caps(name)
    monkeypatch.setitem(registry._meta, name, dataclasses.replace(caps, version=caps.version + 1))


def test_generator_parameters_reach_only_the_strategies_that_sample_it():
    raw = copy.deepcopy(SUITE)
    raw["synthetic"]["generator"]["params"]["components"] = 4
    assert changed(hashes(), hashes(raw)) == {"random_synthetic", "active_synthesis"}


def test_the_synthetic_budget_reaches_every_strategy_that_synthesises():
    raw = copy.deepcopy(SUITE)
    raw["synthetic"]["budget_per_class"] = 20
    assert changed(hashes(), hashes(raw)) == {"random_synthetic", "smote", "dp_gan", "active_synthesis"}


def test_a_generator_version_bump_makes_its_users_stale(monkeypatch):
    before = hashes()
    bump(monkeypatch, GENERATORS, "pca_gmm")
    assert changed(before, hashes()) == {"random_synthetic", "active_synthesis"}


def test_a_strategys_own_generator_version_reaches_it_alone(monkeypatch):
    before = hashes()
    bump(monkeypatch, GENERATORS, "dp_gan")
    assert changed(before, hashes()) == {"dp_gan"}


def test_a_strategy_version_bump_reaches_that_strategy_alone(monkeypatch):
    before = hashes()
    bump(monkeypatch, STRATEGIES, "smote")
    assert changed(before, hashes()) == {"smote"}


@pytest.mark.parametrize("registry, name", [(MODELS, "small_cnn"), (METRICS, "ece")])
def test_model_and_metric_versions_reach_every_cell(monkeypatch, registry, name):
    before = hashes()
    bump(monkeypatch, registry, name)
    assert changed(before, hashes()) == set(before)


def test_unused_settings_change_nothing():
    raw = copy.deepcopy(SUITE)
    raw["primary_metric"] = "ece"  # how the leaderboard sorts, not what a cell computes
    raw["description"] = "another description"
    assert changed(hashes(), hashes(raw)) == set()


def test_two_suite_versions_never_share_a_result_path():
    v1 = cell_path(Path("out"), "s", 1, "cpu", "cifar10", 10, "real_only", 0)
    v2 = cell_path(Path("out"), "s", 2, "cpu", "cifar10", 10, "real_only", 0)
    assert v1 != v2 and v1.name == v2.name == "seed0.json"


def test_a_strategys_own_synthetic_budget_enters_only_its_cells(tmp_path, tiny_task):
    """budget_per_class on a strategy overrides the suite's (a synthetic-budget frontier in one suite): its
    cells record and hash the effective budget, the strategy adds that many, and strategies without the
    override keep the record (and hash) they had before the field existed."""
    from bench.config import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(GOOD.replace("strategies: [real_only]", "strategies: [smote, {name: smote, id: smote_7, params: "
                                  "{budget_per_class: 7}}]\nsynthetic: {generator: {name: pca_gmm}, budget_per_class: 2,"
                                  " mix_ratio: 0.5}"))
    plain, seven = expand_cells(load_suite(str(suite)))
    assert "budget_per_class" not in plain.config["strategy"]["params"]
    assert plain.config["synthetic"]["budget_per_class"] == 2 and seven.config["synthetic"]["budget_per_class"] == 7
    assert plain.hash != seven.hash
    result = STRATEGIES.build("smote", {"budget_per_class": 3}).run(tiny_task)
    assert np.bincount(result.synthetic.y).tolist() == [3, 3, 3]
