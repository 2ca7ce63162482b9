"""The smoke suite end to end through the CLI, resuming, --force, error cells and interruption."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.api import StrategyCaps, StrategyResult
from bench.cli import main
from bench.registry import STRATEGIES
from bench.results import iter_results, validate_result


def results(root: Path) -> dict[str, dict]:
    return {str(p.relative_to(root)): r for p, r in iter_results(root)}


def test_smoke_suite_end_to_end(tmp_path, capsys, monkeypatch):
    out = tmp_path / "results"
    assert main(["run", "--suite", "smoke", "--out", str(out), "--quiet"]) == 0
    got = results(out)
    strategies = ("active_synthesis", "loop_real_only", "oracle_active", "oracle_real", "permuted_labels",
                  "pseudo_label", "random_synthetic", "real_only", "smote")  # the smoke suite's, with its controls
    assert sorted(got) == [f"smoke/v2/cpu/cifar10/n10/{s}/seed0.json" for s in strategies]
    assert all(r["status"] == "ok" for r in got.values())
    for s in ("active_synthesis", "random_synthetic", "smote"):  # each adds 10 synthetic images per class
        log = got[f"smoke/v2/cpu/cifar10/n10/{s}/seed0.json"]["strategy_log"]
        assert log["synthetic_examples"] == 100 and log["mix_ratio"] == 0.5
    active = got["smoke/v2/cpu/cifar10/n10/active_synthesis/seed0.json"]
    assert active["config"]["synthetic"]["budget_per_class"] == 10
    assert [r["round"] for r in active["strategy_log"]["rounds"]] == [0, 1, 2]
    r = got["smoke/v2/cpu/cifar10/n10/real_only/seed0.json"]
    assert r["config"]["synthetic"] is None  # real_only does not depend on the synthetic settings
    validate_result(r)
    assert r["status"] == "ok" and r["error"] is None
    assert set(r["metrics"]) == {"accuracy", "macro_f1", "ece", "nll", "per_class_accuracy"}
    assert 0.0 <= r["metrics"]["accuracy"]["value"] <= 1.0
    assert len(r["metrics"]["per_class_accuracy"]["value"]) == 10
    c = r["compute"]
    assert c["wall_seconds"] > 0 and c["cpu_seconds"] > 0 and c["peak_rss_bytes"] > 50 * 2**20
    assert c["device"] == "cpu" and c["gpu_hours"] is None
    assert r["strategy_log"]["real_examples"] == 100 and len(r["strategy_log"]["history"]) == 2
    assert r["config"]["train"]["epochs"] == 2 and r["packages"]["torch"]
    assert r["cell"] == {"dataset": "cifar10", "budget": 10, "strategy": "real_only", "seed": 0}

    # A second run finds the result up to date and leaves it alone; --force recomputes it.
    path = out / "smoke/v2/cpu/cifar10/n10/real_only/seed0.json"
    stamp = path.stat().st_mtime_ns
    assert main(["run", "--suite", "smoke", "--out", str(out), "--quiet"]) == 0
    assert "0 done, 9 up to date" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == stamp
    assert main(["run", "--suite", "smoke", "--out", str(out), "--quiet", "--force"]) == 0
    assert path.stat().st_mtime_ns != stamp

    # Another seed is another cell; the leaderboard shows both seeds.
    assert main(["run", "--suite", "smoke", "--out", str(out), "--quiet", "--seeds", "0,1"]) == 0
    lb = tmp_path / "LEADERBOARD.md"
    assert main(["leaderboard", "--results", str(out), "--output", str(lb)]) == 0
    assert "| real_only |" in lb.read_text() and "| 2 |" in lb.read_text()
    # Provenance (a clean tree at a known commit) has its own test; this run may come from a working tree.
    monkeypatch.setattr("bench.leaderboard.provenance_problems", lambda root: [])
    assert main(["leaderboard", "--results", str(out), "--output", str(lb), "--check"]) == 0
    lb.write_text(lb.read_text() + "edited by hand\n")
    assert main(["leaderboard", "--results", str(out), "--output", str(lb), "--check"]) == 1


SUITE = """
name: e2e
version: 1
primary_metric: accuracy
datasets: [cifar10]
budgets: [2]
val_per_class: 1
test_per_class: 2
model: {{name: small_cnn, params: {{width: 4}}}}
train: {{epochs: 1}}
strategies: [{strategy}]
metrics: [accuracy]
seeds: [0, 1]
"""


@dataclass
class FailsOnSeed1:
    def run(self, task):
        if task.seed == 1:
            raise RuntimeError("synthetic failure for seed 1")
        return StrategyResult(task.fit())


INTERRUPT = {"on": True}


@dataclass
class InterruptedOnSeed1:
    def run(self, task):
        if task.seed == 1 and INTERRUPT["on"]:
            raise KeyboardInterrupt
        return StrategyResult(task.fit())


@pytest.fixture
def test_strategies(monkeypatch):
    for name, cls in (("fails_on_seed1", FailsOnSeed1), ("interrupted_on_seed1", InterruptedOnSeed1)):
        monkeypatch.setitem(STRATEGIES._entries, name, cls)
        monkeypatch.setitem(STRATEGIES._meta, name, StrategyCaps(kind="baseline"))


def test_a_failing_cell_is_an_error_result_and_is_retried(tmp_path, test_strategies, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.format(strategy="fails_on_seed1"))
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 1
    got = results(out)
    ok, bad = got["e2e/v1/cpu/cifar10/n2/fails_on_seed1/seed0.json"], got["e2e/v1/cpu/cifar10/n2/fails_on_seed1/seed1.json"]
    assert ok["status"] == "ok"
    assert bad["status"] == "error" and bad["metrics"] == {}
    assert bad["error"]["type"] == "RuntimeError" and bad["error"]["message"] == "synthetic failure for seed 1"
    assert bad["compute"]["wall_seconds"] >= 0  # partial timings are kept
    assert "1 done, 0 up to date, 1 failed" in capsys.readouterr().out
    # On the next run the ok cell is up to date and the error cell is tried again.
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 1
    assert "0 done, 1 up to date, 1 failed" in capsys.readouterr().out


def test_an_interrupted_run_resumes(tmp_path, test_strategies, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.format(strategy="interrupted_on_seed1"))
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 130
    assert list(results(out)) == ["e2e/v1/cpu/cifar10/n2/interrupted_on_seed1/seed0.json"]
    first = (out / "e2e/v1/cpu/cifar10/n2/interrupted_on_seed1/seed0.json").read_text()
    assert not list(out.rglob("*.tmp"))
    INTERRUPT["on"] = False
    try:
        assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 0
    finally:
        INTERRUPT["on"] = True
    assert "1 done, 1 up to date, 0 failed" in capsys.readouterr().out
    assert (out / "e2e/v1/cpu/cifar10/n2/interrupted_on_seed1/seed0.json").read_text() == first
    assert json.loads((out / "e2e/v1/cpu/cifar10/n2/interrupted_on_seed1/seed1.json").read_text())["status"] == "ok"


def test_changed_config_is_recomputed(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.format(strategy="real_only").replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 0
    h1 = results(out)["e2e/v1/cpu/cifar10/n2/real_only/seed0.json"]["config_hash"]
    suite.write_text(suite.read_text().replace("epochs: 1", "epochs: 2"))
    capsys.readouterr()
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "1 done, 0 up to date" in capsys.readouterr().out
    assert results(out)["e2e/v1/cpu/cifar10/n2/real_only/seed0.json"]["config_hash"] != h1
