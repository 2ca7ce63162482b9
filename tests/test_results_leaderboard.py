from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from scipy import stats

from bench import leaderboard
from bench.errors import BenchError
from bench.results import cell_path, validate_result, write_result


def record(strategy: str, seed: int, acc: float, nll: float = 1.0, status: str = "ok") -> dict:
    return {
        "schema_version": 1,
        "suite": {"name": "s", "version": 1, "preset": "cpu", "primary_metric": "accuracy"},
        "cell": {"dataset": "d", "budget": 10, "strategy": strategy, "seed": seed},
        "config": {"seed": seed},
        "config_hash": "a" * 64,
        "status": status,
        "error": None if status == "ok" else {"type": "RuntimeError", "message": "boom"},
        "metrics": {} if status != "ok" else {
            "accuracy": {"value": acc, "higher_is_better": True},
            "nll": {"value": nll, "higher_is_better": False},
            "per_class_accuracy": {"value": {"a": acc}, "higher_is_better": True},
        },
        "strategy_log": {},
        "compute": {"wall_seconds": 10.0, "cpu_seconds": 20.0, "cpu_hours": 20 / 3600, "peak_rss_bytes": 2**30,
                    "peak_rss_scope": "cell", "device": "cpu", "gpu_peak_memory_bytes": None, "gpu_hours": None},
        "code": {"git_commit": None, "git_dirty": None, "package_version": "0.1.0"},
        "packages": {"torch": "2.14.1"},
        "hardware": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def put(root: Path, r: dict) -> None:
    c = r["cell"]
    write_result(cell_path(root, "s", "cpu", c["dataset"], c["budget"], c["strategy"], c["seed"]), r)


def test_schema_accepts_a_good_record_and_rejects_bad_ones():
    validate_result(record("x", 0, 0.5))
    validate_result(record("x", 0, 0.5, status="error"))
    bad = copy.deepcopy(record("x", 0, 0.5))
    bad["metrics"]["accuracy"]["value"] = "50%"  # floats, not strings
    with pytest.raises(BenchError, match="metrics.accuracy.value"):
        validate_result(bad)
    bad = record("x", 0, 0.5)
    bad["status"] = "error"  # an error result must say what went wrong
    with pytest.raises(BenchError):
        validate_result(bad)
    bad = record("x", 0, 0.5)
    del bad["compute"]["peak_rss_bytes"]
    with pytest.raises(BenchError, match="peak_rss_bytes"):
        validate_result(bad)


def test_write_is_atomic_and_an_invalid_record_never_replaces_a_good_one(tmp_path):
    path = tmp_path / "r" / "seed0.json"
    write_result(path, record("x", 0, 0.5))
    before = path.read_text()
    bad = record("x", 0, 0.5)
    bad["config_hash"] = "nothex"
    with pytest.raises(BenchError):
        write_result(path, bad)
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["seed0.json"]  # no temp file left behind
    assert path.stat().st_mode & 0o044 == 0o044  # readable by others, like any file the user writes


def test_nan_is_written_as_null(tmp_path):
    r = record("x", 0, float("nan"))
    path = tmp_path / "seed0.json"
    write_result(path, r)
    assert json.loads(path.read_text())["metrics"]["accuracy"]["value"] is None


def test_mean_ci_matches_students_t():
    vals = [0.5, 0.6, 0.7]
    mean, std, lo, hi = leaderboard.mean_ci(vals)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert (mean, std) == pytest.approx((0.6, 0.1))
    assert (lo, hi) == pytest.approx((0.6 - half, 0.6 + half))
    assert leaderboard.mean_ci([0.4])[2:] == (None, None)


def test_leaderboard_sorts_by_primary_metric_and_counts_errors(tmp_path):
    for seed, acc in enumerate([0.5, 0.6, 0.7]):
        put(tmp_path, record("good", seed, acc))
    for seed, acc in enumerate([0.2, 0.3]):
        put(tmp_path, record("weak", seed, acc))
    put(tmp_path, record("weak", 2, 0.0, status="error"))
    text = leaderboard.render(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| good") or line.startswith("| weak")]
    assert rows[0].startswith("| good | 0.6000 ± 0.1000 |") and "| 3 |" in rows[0]
    assert rows[1].startswith("| weak | 0.2500 ± 0.0707 |")
    assert rows[1].endswith("| 1 |")  # one error cell
    assert "## s v1 · preset cpu · d · 10 real per class" in text
    assert "per_class_accuracy" not in text  # per-class values stay in the JSON


def test_a_metric_that_is_a_mapping_in_some_results_and_none_in_others_stays_out(tmp_path):
    real, synth = record("real_only", 0, 0.5), record("synth", 0, 0.6)
    real["metrics"]["audit"] = {"value": None, "higher_is_better": False}  # no synthetic data
    synth["metrics"]["audit"] = {"value": {"synthetic": 0.1, "real": 0.2}, "higher_is_better": False}
    put(tmp_path, real)  # sorted first: its None would make the metric look scalar
    put(tmp_path, synth)
    text = leaderboard.render(tmp_path)
    assert "audit" not in text and "| synth | 0.6000" in text


def test_leaderboard_check_detects_stale_file(tmp_path):
    put(tmp_path, record("good", 0, 0.5))
    out = tmp_path / "LEADERBOARD.md"
    leaderboard.write(tmp_path, out)
    assert leaderboard.is_current(tmp_path, out)
    put(tmp_path, record("good", 1, 0.7))
    assert not leaderboard.is_current(tmp_path, out)


def test_damaged_result_file_is_named(tmp_path):
    put(tmp_path, record("good", 0, 0.5))
    damaged = next(tmp_path.rglob("seed0.json"))
    damaged.write_text(damaged.read_text()[:50])
    with pytest.raises(BenchError, match=r"seed0.json is not valid JSON"):
        leaderboard.render(tmp_path)
