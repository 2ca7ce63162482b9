"""`bench run --until-mde`: seeds added in batches until the key comparisons' MDE reaches the target.

The loop is tested through the CLI with the runner replaced by one that writes made-up results (no
training): the MDE it must stop at is computed here from the same differences with bench.stats."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_stats import put, record
from tiny_suite import GOOD

from bench import stats
from bench.cli import main
from bench.cli.run import next_seeds
from bench.config import load_suite
from bench.plan import worst_key_comparison
from bench.runner import RunSummary

# active_synthesis - real_only in seed i, in points: 2 +- 1 alternating (SD about 1 point at any n).
DIFF = [2 + (1 if i % 2 else -1) for i in range(40)]


def diff_mde(n: int) -> float:
    return stats.mde(float(np.std(DIFF[:n], ddof=1)), n)


def test_next_seeds_follow_the_largest_seed_used():
    assert next_seeds([0], 2) == [1, 2]
    assert next_seeds([0, 1, 2], 1) == [3]
    assert next_seeds([7, 0, 3], 3) == [8, 9, 10]  # gaps are not refilled: no seed runs twice


def comparison(strategy, reference, mde, identical=False):
    return {"dataset": "d", "budget": 10, "strategy": strategy, "reference": reference, "pairs": 3, "sd": 1.0,
            "mde": mde, "seeds": 9, "identical": identical}


def test_the_worst_key_comparison_counts_missing_as_infinite_and_identical_as_reached():
    keys = {("d", 10, "m", "real_only"), ("d", 10, "m", "random_synthetic")}
    plan = [comparison("m", "real_only", 1.5), comparison("m", "random_synthetic", None, identical=True),
            comparison("other", "real_only", 9.0)]  # not a key comparison: ignored
    assert worst_key_comparison(plan, keys) == (1.5, ("d", 10, "m", "real_only"))
    assert worst_key_comparison(plan[:1], keys) == (math.inf, ("d", 10, "m", "random_synthetic"))  # missing
    assert worst_key_comparison([comparison("m", "real_only", None)] + plan[1:], keys)[0] == math.inf
    assert worst_key_comparison([comparison("m", "real_only", 0.5), comparison("m", "random_synthetic", 2.5)],
                                keys) == (2.5, ("d", 10, "m", "random_synthetic"))


@pytest.fixture
def fake_runner(monkeypatch):
    """bench.runner.run_suite replaced: each call writes the key strategies' results of the suite's seeds
    (random_synthetic equal to active_synthesis: identical) and records the seeds it was given."""
    batches: list[list[int]] = []

    def run_suite(suite, out, **kw):
        batches.append(list(suite.seeds))
        done = []
        for seed in suite.seeds:
            base = 0.5 + 0.03 * math.sin(seed)  # the seed moves every strategy alike
            for strategy, value in (("real_only", base), ("loop_real_only", base + 0.01 * DIFF[seed] / 2),
                                    ("active_synthesis", base + 0.01 * DIFF[seed]),
                                    ("random_synthetic", base + 0.01 * DIFF[seed])):
                r = record(strategy, seed, value, suite="smoke", dataset="cifar10", budget=10)
                r["suite"]["version"] = suite.version
                put(Path(out), r)
                done.append(Path(out) / strategy / str(seed))
        return RunSummary(done=done)

    monkeypatch.setattr("bench.runner.run_suite", run_suite)
    return batches


def test_seeds_are_added_in_batches_until_the_target(tmp_path, fake_runner, capsys):
    target = 1.5
    expected = next(n for n in range(3, 40, 2) if diff_mde(n) <= target)  # seeds 0 | 1,2 | 3,4 | ...
    assert expected == 7 and diff_mde(5) > target  # the case tests several batches
    assert main(["run", "--suite", "smoke", "--out", str(tmp_path), "--quiet", "--until-mde", str(target)]) == 0
    assert fake_runner == [[0], [1, 2], [3, 4], [5, 6]]
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("until-mde:")]
    assert lines[0] == ("until-mde: 1 seeds: worst MDE unknown (cifar10 10: active_synthesis vs real_only, "
                        "under 2 paired ok seeds), target 1.5")
    assert f"until-mde: 5 seeds: worst MDE {diff_mde(5):.2f} points" in lines[2]
    assert "active_synthesis vs real_only" in lines[3]  # loop_real_only's differences are half as large
    assert lines[-1] == "until-mde: reached: every key comparison detects 1.5 points at 7 seeds"


def test_max_seeds_stops_the_loop_with_the_plans_estimate(tmp_path, fake_runner, capsys):
    args = ["run", "--suite", "smoke", "--out", str(tmp_path), "--quiet", "--until-mde", "0.5",
            "--max-seeds", "6", "--seed-batch", "3", "--seeds", "0,1"]
    assert main(args) == 0
    assert fake_runner == [[0, 1], [2, 3, 4], [5]]  # the last batch is cut to --max-seeds
    last = capsys.readouterr().out.splitlines()[-2]  # the run's summary line comes last
    sd = float(np.std(DIFF[:6], ddof=1))
    assert last == (f"until-mde: not reached: worst MDE {diff_mde(6):.2f} points at 6 seeds (--max-seeds 6), "
                    f"target 0.5; bench plan estimates {stats.seeds_needed(0.5, sd)} seeds for 0.5 points")


def test_error_cells_exit_1_and_a_batch_without_any_finished_cell_stops(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("bench.runner.run_suite",
                        lambda suite, out, **kw: calls.append(suite.seeds) or RunSummary(failed=[Path("x")]))
    assert main(["run", "--suite", "smoke", "--out", str(tmp_path), "--quiet", "--until-mde", "1"]) == 1
    assert calls == [[0]] and "until-mde: stopped: no cell of seeds 0 finished" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--until-mde", "0"], "--until-mde takes a positive number of points"),
    (["--until-mde", "1", "--seed-batch", "0"], "--seed-batch takes a whole number >= 1"),
    (["--until-mde", "1", "--seeds", "0,1,2", "--max-seeds", "2"], "--max-seeds 2 is below the 3 seeds"),
    (["--max-seeds", "4"], "--max-seeds and --seed-batch go with --until-mde"),
])
def test_bad_flags_are_one_line_errors(tmp_path, fake_runner, capsys, extra, message):
    assert main(["run", "--suite", "smoke", "--out", str(tmp_path)] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and fake_runner == []


def test_a_suite_without_a_method_is_refused(tmp_path, fake_runner, capsys):
    suite = tmp_path / "t.yaml"
    suite.write_text(GOOD)  # real_only alone: a reference, no method
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path), "--until-mde", "1"]) == 2
    assert "needs a strategy of kind method and a reference" in capsys.readouterr().err and fake_runner == []
    assert load_suite(str(suite)).seeds == [0]
