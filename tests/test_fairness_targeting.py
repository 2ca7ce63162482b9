"""Fairness targeting of the active loop (`targeting: fairness`, method/targeting.py): the allocation of a
round's rows to (sensitive group, label) cells, the loop's rows following it on a toy table, the errors
for a non-table and an unknown attribute, and the suites that evaluate it."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_tabular import SCHEMA, make_rows  # the toy table: the label is 1 for pilots and anyone over 60

from bench.api import Conditions, DatasetSplits, Split
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.errors import BenchError
from bench.method.targeting import fairness_allocation
from bench.registry import STRATEGIES
from bench.task import Task

SEX = SCHEMA.index("sex")


@pytest.fixture(scope="module")
def table() -> DatasetSplits:
    rng = np.random.default_rng(0)
    return DatasetSplits(name="toy_table", modality="tabular", classes=["no", "yes"], train=make_rows(2000, rng),
                         test=make_rows(200, rng), schema=SCHEMA)


def table_task(table: DatasetSplits) -> Task:
    return Task.build(table, budget=40, val_per_class=30, seed=0,
                      model=NamedSpec(name="mlp", params={"hidden": [16], "dropout": 0.2}),
                      recipe=TrainRecipe(epochs=5, batch_size=32, lr=3e-3),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="gaussian_copula"), budget_per_class=30,
                                              mix_ratio=0.5))


class TableRecorder:
    """A generator that records its conditions and returns random rows that meet them."""

    def __init__(self) -> None:
        self.calls: list[Conditions] = []

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        self.calls.append(conditions)
        rows = make_rows(n, rng)
        for column, codes in conditions.attributes.items():
            set_ = ~np.isnan(codes)
            rows.x[set_, SCHEMA.index(column)] = codes[set_]
        return Split(rows.x, np.asarray(conditions.labels))


def fair(**params: Any) -> Any:
    return STRATEGIES.build("active_synthesis", {"targeting": "fairness", "sensitive": "sex",
                                                 "uncertainty": "mc_dropout", "passes": 4, "pool_size": 300,
                                                 "max_rounds": 2, "patience": 5, "round_epochs": 2, **params})


def test_groups_get_rows_by_their_share_of_the_uncertain_region():
    # Equal label rates everywhere: rows split 3:1 as U_tau is, and each group's rows split at the overall rate.
    cells = fairness_allocation(np.array([30, 10]), np.array([[50, 50], [50, 50]]), 40)
    assert cells.tolist() == [[15, 15], [5, 5]]
    # A group absent from U_tau gets nothing.
    assert fairness_allocation(np.array([0, 8]), np.array([[50, 50], [50, 50]]), 8).tolist() == [[0, 0], [4, 4]]


def test_the_group_with_the_lower_positive_rate_gets_the_positive_rows():
    # Overall rate 0.3 (60 of 200). Group 0 sits at 0.4: its 20 rows reach 0.3 with 2 more positives at most
    # (0.3 * 120 - 40 < 0), so all are negative; group 1 sits at 0.2: 0.3 * 120 - 20 = 16 positives, 4 negatives.
    cells = fairness_allocation(np.array([1, 1]), np.array([[60, 40], [80, 20]]), 40)
    assert cells.tolist() == [[20, 0], [4, 16]]
    assert cells.sum() == 40 and cells[1, 1] > cells[0, 1]
    # Exact parity when it can be reached: group 1's rate (20 + 16) / 120 = 0.3, the overall rate.
    assert (20 + cells[1, 1]) / (100 + cells[1].sum()) == pytest.approx(0.3)


def test_the_loop_generates_the_allocated_group_and_label_cells(table):
    task = table_task(table)
    strategy, recorder = fair(), TableRecorder()
    strategy.fitted_generator = lambda task, *a, **k: (recorder, {"name": "recorder"})
    result = strategy.run(task)
    logs = [r["targeting"] for r in result.log["rounds"] if "targeting" in r]
    assert len(logs) == len(recorder.calls) == 2 and all(log["kind"] == "fairness" for log in logs)
    # Round 1 counts the real budget alone, round 2 the real budget and round 1's rows.
    counts = np.zeros((2, 2), dtype=int)
    np.add.at(counts, (task.train.x[:, SEX].astype(int), task.train.y), 1)
    for log in logs:
        uncertain = [log["groups"][g]["uncertain"] for g in ("female", "male")]
        assert sum(uncertain) > 0
        cells = fairness_allocation(np.array(uncertain), counts, 30)
        assert [log["groups"][g]["rows_per_label"] for g in ("female", "male")] == cells.tolist()
        counts = counts + cells
    # Each round's rows carry the logged (sex, label) cells.
    for call, log in zip(recorder.calls, logs):
        got = np.zeros((2, 2), dtype=int)
        np.add.at(got, (call.attributes["sex"].astype(int), call.labels), 1)
        assert got.tolist() == [log["groups"][g]["rows_per_label"] for g in ("female", "male")]
    synthetic = result.synthetic
    assert len(synthetic) == 60
    got = np.zeros((2, 2), dtype=int)
    np.add.at(got, (synthetic.x[:, SEX].astype(int), np.asarray(synthetic.y)), 1)
    assert got.tolist() == np.sum([[log["groups"][g]["rows_per_label"] for g in ("female", "male")] for log in logs],
                                  axis=0).tolist()


def test_fairness_targeting_needs_a_table(tiny_task):
    strategy = fair()
    with pytest.raises(ValueError, match="conditions on table columns"):
        strategy.check_compatible("image", None)
    with pytest.raises(BenchError, match="needs a table"):
        strategy.run(tiny_task)


def test_an_unknown_sensitive_attribute_fails_before_any_work(table):
    strategy = fair(sensitive="race")

    def no_work(*a, **k):
        raise AssertionError("work started")

    strategy.fitted_generator = no_work
    task = table_task(table)
    task.fit = no_work
    with pytest.raises(BenchError, match="'race' is not a sensitive attribute of the data set \\(it has: sex\\)"):
        strategy.run(task)
    with pytest.raises(BenchError, match="needs `sensitive`"):
        STRATEGIES.build("active_synthesis", {"targeting": "fairness"})


@pytest.mark.parametrize("name", ["adult-fairness", "credit-fairness"])
def test_the_fairness_suites_validate(name, capsys):
    import bench.benchmarks as benchmarks
    from bench.cli import main

    assert main(["validate", str(benchmarks.SUITES_DIR / f"{name}.yaml")]) == 0
    assert "valid suite" in capsys.readouterr().out
