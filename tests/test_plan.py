"""`bench plan`: the seeds and CPU-hours to detect an effect, from the variance and cost of cells run."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_stats import put, record

from bench import stats
from bench.cli import main
from bench.config import load_suite
from bench.plan import make_plan

# Differences active_synthesis - real_only of 1, 3, 2 points: SD 1 point.
DIFFS = [0.01, 0.03, 0.02]


def smoke_results(root: Path, cpu: dict[str, float]) -> None:
    suite = load_suite("smoke")
    for seed, d in enumerate(DIFFS):
        for strategy, value in (("real_only", 0.5), ("active_synthesis", 0.5 + d), ("random_synthetic", 0.5)):
            r = record(strategy, seed, value, suite="smoke", dataset="cifar10", budget=10)
            r["suite"]["version"] = suite.version
            r["compute"]["cpu_seconds"] = cpu.get(strategy, 1.0)
            put(root, r)


def test_the_plan_sizes_seeds_from_the_paired_sd_and_costs_them(tmp_path):
    smoke_results(tmp_path, {"real_only": 10.0, "active_synthesis": 100.0, "random_synthetic": 60.0})
    plan = make_plan(tmp_path, load_suite("smoke"), effect_points=2.0)
    by_ref = {c["reference"]: c for c in plan["comparisons"]}
    vs_real = by_ref["real_only"]
    assert vs_real["pairs"] == 3 and vs_real["sd"] == pytest.approx(1.0)
    assert vs_real["seeds"] == stats.seeds_needed(2.0, 1.0) and vs_real["mde"] == pytest.approx(stats.mde(1.0, 3))
    # The controls and smote have no cells: the loop's strategies are costed as the mean of those that ran.
    loop_mean = (100.0 + 60.0) / 2
    assert plan["cost"]["loop_real_only"] == pytest.approx(loop_mean) and "loop_real_only" in plan["estimated"]
    assert plan["cost"]["smote"] is None and plan["cost"]["real_only"] == 10.0


def test_identical_models_are_left_out_of_the_plan(tmp_path, capsys):
    smoke_results(tmp_path, {})
    # random_synthetic equals real_only in every seed: identical, no variance to size from
    plan = make_plan(tmp_path, load_suite("smoke"), effect_points=2.0)
    same = next(c for c in plan["comparisons"] if c["reference"] == "random_synthetic")
    assert not same["identical"]  # active differs from random_synthetic
    assert main(["plan", "--suite", "smoke", "--results", str(tmp_path), "--effect", "2"]) == 0
    out = capsys.readouterr().out
    needed = stats.seeds_needed(2.0, 1.0)
    assert f"plan: {needed} seeds to detect 2 points" in out
    hours = needed * (1.0 * 3 + (1.0 + 1.0) / 2 * 5) / 3600  # 3 strategies ran (1 s each), 5 controls estimated
    assert f"about {hours:.1f} CPU-hours" in out and not math.isnan(hours)


def test_a_suite_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no results of suite 'smoke'"):
        make_plan(tmp_path, load_suite("smoke"), effect_points=2.0)


def test_the_leaderboard_sizes_each_current_suite_for_its_equivalence_margin(tmp_path):
    """The plan line: the worst key MDE the seeds reached and, for the suite's margin (smoke: 2 points), the
    seeds and CPU-hours that detecting it in every key comparison needs; none for another version."""
    from bench import leaderboard
    from bench.results import load_results

    smoke_results(tmp_path, {"real_only": 3600.0, "active_synthesis": 3600.0, "random_synthetic": 3600.0})
    suite = load_suite("smoke")
    records = list(load_results(tmp_path))
    line = leaderboard.plan_line(("smoke", suite.version, "cpu"), records)
    margin = suite.equivalence_margin
    need = stats.seeds_needed(margin, 1.0)
    assert f"reach an MDE of {stats.mde(1.0, 3):.2f} points with 3 seeds" in line
    # 3 strategies ran at 1 CPU-hour a cell; the suite's 5 controls are costed as the loop's mean (1 hour)
    assert f"detecting {margin:g} points (the equivalence margin) in every one needs {need} seeds, about " \
           f"{need * 8:.1f} CPU-hours" in line
    assert leaderboard.plan_line(("smoke", suite.version + 1, "cpu"), records) == ""
