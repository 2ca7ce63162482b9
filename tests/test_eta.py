"""The run's estimate (bench/eta.py): cells costed from finished results, nearest first, and corrected by
the cells that finish."""
from __future__ import annotations

import pytest
from test_stats import record

from bench.cells import expand_cells
from bench.config import load_suite
from bench.eta import RunEstimate, format_duration
from bench.results import cell_path, write_result


def finished(root, suite, cell, cpu: float) -> None:
    r = record(cell.strategy.key, cell.seed, 0.5, suite=suite.name, dataset=cell.dataset.name, budget=cell.budget)
    r["suite"]["version"] = suite.version
    r["config"], r["config_hash"] = cell.config, cell.hash
    r["compute"]["cpu_seconds"] = cpu
    write_result(cell_path(root, suite.name, suite.version, "cpu", cell.dataset.name, cell.budget, cell.strategy.key,
                           cell.seed), r)


@pytest.fixture(scope="module")
def smoke():
    suite = load_suite("smoke", seeds=[0, 1])
    return suite, expand_cells(suite)


def test_cells_are_costed_from_the_very_cell_then_from_the_same_strategy(tmp_path, smoke):
    suite, cells = smoke
    seed0 = [c for c in cells if c.seed == 0]
    seed1 = [c for c in cells if c.seed == 1]
    finished(tmp_path, suite, seed0[0], 100.0)  # real_only seed 0
    finished(tmp_path, suite, seed1[0], 60.0)  # real_only seed 1
    estimate = RunEstimate.of(suite, [seed0[0], seed1[0], seed0[1]], roots=[tmp_path], parallel=1)
    # the very cells (same hash) first; a cell with no result of its own strategy: the mean of the others
    assert estimate.estimates == [100.0, 60.0, None]
    assert estimate.remaining_seconds() == pytest.approx(100 + 60 + 80)
    assert "1 of 3 cells costed as the mean of the others" in estimate.describe()
    other_seed = RunEstimate.of(load_suite("smoke", seeds=[7]), [c for c in expand_cells(load_suite("smoke", seeds=[7]))
                                                                   if c.strategy.key == "real_only"], roots=[tmp_path])
    assert other_seed.estimates == [80.0]  # same data set, budget and strategy id: their mean


def test_the_estimate_follows_the_cells_that_finish(smoke):
    suite, cells = smoke
    estimate = RunEstimate([10.0, 10.0, 10.0, 10.0], parallel=2)
    assert estimate.remaining_seconds() == pytest.approx(20.0)  # 40 s of cells, 2 at a time
    estimate.finished(0, 30.0)  # this machine takes three times as long
    assert estimate.speed == pytest.approx(3.0)
    assert estimate.remaining_seconds() == pytest.approx(3 * 30.0 / 2)
    unknown = RunEstimate([None, None], parallel=1)
    assert unknown.remaining_seconds() is None and "none yet" in unknown.describe()
    unknown.finished(0, 12.0)
    assert unknown.remaining_seconds() == pytest.approx(12.0)


def test_durations_read_as_words():
    assert format_duration(30) == "under a minute"
    assert format_duration(12 * 60) == "about 12 min"
    assert format_duration(2.2 * 3600) == "about 2.2 h"


def test_a_new_suite_is_costed_from_other_suites_on_the_same_data(tmp_path, smoke):
    suite, cells = smoke
    cell = next(c for c in cells if c.strategy.key == "real_only" and c.seed == 0)
    r = record("real_only", 0, 0.5, suite="another", dataset=cell.dataset.name, budget=cell.budget)
    r["config"] = {"strategy": "real_only", "seed": 0}
    from bench.config import config_hash

    r["config_hash"] = config_hash(r["config"])
    r["compute"]["cpu_seconds"] = 42.0
    write_result(cell_path(tmp_path, "another", 1, "cpu", cell.dataset.name, cell.budget, "real_only", 0), r)
    assert RunEstimate.of(suite, [cell], roots=[tmp_path]).estimates == [42.0]
