"""What a strategy sees of its task (bench.task.StrategyView, bench.api.TaskView): no test split, the data
set's facts instead of its loaded splits, and the pool without its labels unless the strategy declares
`reads_pool_labels` (an oracle), which its result then records. Reading what the view withholds is a
one-line BenchError, and a cell whose strategy tries is an error result with that message; metrics keep
the whole task; the built-in strategies run on the view."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.api import StrategyCaps, StrategyResult, TaskView
from bench.cli import main
from bench.errors import BenchError
from bench.registry import STRATEGIES
from bench.results import Result, iter_results
from bench.synthesis import concat, pool_split
from bench.task import Task

TEST_HIDDEN = "strategies may not read the test split: only the evaluator sees it"
POOL_HIDDEN = r"strategies may not read the pool's labels \(task\.pool\.y\)"
SPLITS_HIDDEN = "strategies may not read the loaded data set's splits"

PLAIN = StrategyCaps(kind="baseline")
ORACLE = StrategyCaps(kind="baseline", reads_pool_labels=True)


# --- the view itself ------------------------------------------------------------------------------------


def test_a_strategys_view_has_no_test_split_and_no_loaded_splits(tiny_task: Task):
    view = tiny_task.for_strategy(PLAIN)
    with pytest.raises(BenchError, match=TEST_HIDDEN):
        view.test  # noqa: B018
    with pytest.raises(BenchError, match=TEST_HIDDEN):
        view.data.test  # noqa: B018
    with pytest.raises(BenchError, match=SPLITS_HIDDEN):
        view.data.train  # noqa: B018
    assert isinstance(view, TaskView) and not hasattr(TaskView, "test")


def test_the_view_keeps_what_strategies_use(tiny_task: Task):
    view = tiny_task.for_strategy(PLAIN)
    assert (view.data.name, view.data.modality, list(view.data.classes), view.data.schema, view.data.num_classes) \
        == ("tiny", "image", ["r", "g", "b"], None, 3)
    assert view.info == tiny_task.info and view.num_classes == 3
    assert view.train is tiny_task.train and view.val is tiny_task.val
    assert (view.budget, view.seed, view.model, view.recipe, view.synthetic, view.device) == (
        tiny_task.budget, tiny_task.seed, tiny_task.model, tiny_task.recipe, tiny_task.synthetic, tiny_task.device)


def test_the_pool_hides_its_labels_from_a_strategy_that_does_not_declare_them(tiny_task: Task):
    pool = tiny_task.for_strategy(PLAIN).pool
    assert len(pool) == len(tiny_task.pool) == 75
    assert np.array_equal(pool.x, tiny_task.pool.x)
    with pytest.raises(BenchError, match=POOL_HIDDEN):
        pool.y  # noqa: B018
    part = pool.subset(np.array([0, 3, 5]))
    assert len(part) == 3 and np.array_equal(part.x, tiny_task.pool.x[[0, 3, 5]])
    with pytest.raises(BenchError, match=POOL_HIDDEN):
        part.y  # noqa: B018
    assert len(pool.subset(np.arange(75) < 10)) == 10  # a boolean mask too
    assert "labels hidden" in repr(pool)
    with pytest.raises(BenchError, match=POOL_HIDDEN):  # mixing the pool into training data reads its labels
        concat(tiny_task.train, pool)


def test_the_shared_pool_subsample_keeps_the_labels_hidden(tiny_task: Task):
    view = tiny_task.for_strategy(PLAIN)
    pool = pool_split(view, "unlabeled", 10, seed=0)
    assert len(pool) == 10
    with pytest.raises(BenchError, match=POOL_HIDDEN):
        pool.y  # noqa: B018
    assert np.array_equal(pool_split(view, "validation", None, seed=0).y, tiny_task.val.y)


def test_an_oracle_reads_the_pools_labels(tiny_task: Task):
    pool = tiny_task.for_strategy(ORACLE).pool
    assert np.array_equal(pool.y, tiny_task.pool.y)
    with pytest.raises(BenchError, match=TEST_HIDDEN):  # but never the test split
        tiny_task.for_strategy(ORACLE).test  # noqa: B018


def test_the_view_trains_the_task_model_as_the_task_does(tiny_task: Task):
    view = tiny_task.for_strategy(PLAIN)
    a, b = tiny_task.fit(), view.fit()
    x = tiny_task.val.x
    assert np.allclose(a.predict_proba(x), b.predict_proba(x))


# --- cells: what a strategy that reads too much gets, and what its result says ---------------------------


@dataclass
class ReadsTest:
    def run(self, task: TaskView) -> StrategyResult:
        return StrategyResult(Majority(task.test.y, task.num_classes))


@dataclass
class ReadsDataTest:
    def run(self, task: TaskView) -> StrategyResult:
        return StrategyResult(Majority(task.data.test.y, task.num_classes))


@dataclass
class ReadsPoolLabels:
    def run(self, task: TaskView) -> StrategyResult:
        return StrategyResult(Majority(task.pool.y, task.num_classes))


@dataclass
class PoolOracle:
    """Declares reads_pool_labels: predicts the pool's majority class."""

    def run(self, task: TaskView) -> StrategyResult:
        return StrategyResult(Majority(task.pool.y, task.num_classes), log={"pool_labels": len(task.pool.y)})


class Majority:
    def __init__(self, y: np.ndarray, classes: int) -> None:
        self.p = np.bincount(np.asarray(y), minlength=classes) / len(y)

    def predict_proba(self, x) -> np.ndarray:
        return np.tile(self.p, (len(x), 1))


THROWAWAY = {"reads_test": (ReadsTest, {}), "reads_data_test": (ReadsDataTest, {}),
             "reads_pool_labels": (ReadsPoolLabels, {}), "pool_oracle": (PoolOracle, {"reads_pool_labels": True})}

SUITE = """
name: view
version: 1
primary_metric: accuracy
datasets: [{name: toy_pockets, params: {train_per_class: 200, test_per_class: 50}}]
budgets: [20]
val_per_class: 10
model: {name: mlp, params: {hidden: [8]}}
train: {epochs: 2, batch_size: 64}
synthetic:
  generator: {name: pca_gmm, params: {components: 2, mixtures: 2}}
  budget_per_class: 10
  mix_ratio: 0.5
strategies: [reads_test, reads_data_test, reads_pool_labels, pool_oracle, real_only, smote, prior_synthetic,
             {name: active_synthesis, params: {passes: 2, max_rounds: 1, round_epochs: 2, pool_size: 50}}]
metrics: [accuracy]
seeds: [0]
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    for name, (cls, caps) in THROWAWAY.items():
        STRATEGIES.register(name, kind="baseline", **caps)(cls)
    try:
        tmp = tmp_path_factory.mktemp("view")
        suite = Path(tmp / "view.yaml")
        suite.write_text(SUITE)
        out = tmp / "out"
        assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--device", "cpu"]) == 1
        return {r.strategy: r for r in (Result(rec, path) for path, rec in iter_results(out))}
    finally:
        for name in THROWAWAY:
            STRATEGIES._entries.pop(name, None)
            STRATEGIES._meta.pop(name, None)


@pytest.mark.parametrize("strategy, message", [
    ("reads_test", TEST_HIDDEN), ("reads_data_test", TEST_HIDDEN), ("reads_pool_labels", POOL_HIDDEN)])
def test_a_strategy_that_reads_what_it_may_not_is_an_error_result(results, strategy, message):
    r = results[strategy]
    assert r.status == "error" and r["error"]["type"] == "BenchError"
    assert re.match(message, r["error"]["message"])
    assert r.reads_pool_labels is False


def test_an_oracles_result_records_that_it_read_the_pools_labels(results):
    r = results["pool_oracle"]
    assert r.ok and r.strategy_log["pool_labels"] == 2 * (200 - 20 - 10)
    assert r.reads_pool_labels is True and r["reads_pool_labels"] is True


@pytest.mark.parametrize("strategy", ["real_only", "smote", "prior_synthetic", "active_synthesis"])
def test_the_built_in_strategies_run_on_the_view(results, strategy):
    r = results[strategy]
    assert r.ok, r["error"]
    assert r.value("accuracy") is not None and r["reads_pool_labels"] is False


def test_a_result_without_the_field_reads_as_no_pool_labels():
    assert Result({"cell": {}}).reads_pool_labels is False
