from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from scipy import stats

from bench import leaderboard
from bench.config import config_hash
from bench.errors import BenchError
from bench.results import (
    Result,
    by_family,
    by_group,
    by_seed,
    by_strategy,
    cell_path,
    iter_results,
    load_results,
    scalar_metrics,
    validate_result,
    write_result,
)


def record(strategy: str, seed: int, acc: float, nll: float = 1.0, status: str = "ok") -> dict:
    return {
        "schema_version": 1,
        "suite": {"name": "s", "version": 1, "preset": "cpu", "primary_metric": "accuracy"},
        "cell": {"dataset": "d", "budget": 10, "strategy": strategy, "seed": seed},
        "config": {"seed": seed},
        "config_hash": config_hash({"seed": seed}),  # the reader recomputes it from the config
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
    r["config_hash"] = config_hash(r["config"])  # a test edits the config: the record stays self-consistent
    c = r["cell"]
    write_result(cell_path(root, "s", 1, "cpu", c["dataset"], c["budget"], c["strategy"], c["seed"]), r)


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


def test_damaged_or_invalid_result_files_are_named_and_skipped(tmp_path, capsys):
    for seed in range(4):
        put(tmp_path, record("good", seed, 0.5 + seed / 10))
    damaged, not_object, invalid = (next(tmp_path.rglob(f"seed{i}.json")) for i in (0, 1, 2))
    damaged.write_text(damaged.read_text()[:50])
    not_object.write_text("[]")
    bad = record("good", 2, 0.7)
    bad["metrics"]["accuracy"]["value"] = "70%"
    invalid.write_text(json.dumps(bad))
    with pytest.raises(BenchError, match=r"seed0.json is not valid JSON"):
        list(iter_results(tmp_path))  # without a handler, the first bad file is an error naming it
    text = leaderboard.render(tmp_path)
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 3 and all(w.startswith("bench: warning: skipping an invalid result: ") for w in warnings)
    assert "seed0.json is not valid JSON" in warnings[0]
    assert "seed1.json: result does not match schema v1: (top level)" in warnings[1]
    assert "seed2.json: result does not match schema v1: metrics.accuracy.value" in warnings[2]
    assert "| good | 0.8000 |" in text and "| 1 |" in text  # the one valid seed


def test_check_fails_on_results_from_a_dirty_tree_or_an_unknown_commit(tmp_path):
    from bench.cli import main
    from bench.environment import code_version, known_commit

    head = code_version()["git_commit"]
    clean = record("x", 0, 0.5)
    clean["code"] = {"git_commit": head, "git_dirty": False, "package_version": "0.1.0"}
    put(tmp_path, clean)
    out = tmp_path / "LB.md"
    leaderboard.write(tmp_path, out)
    if head is None or known_commit(head) is None:
        pytest.skip("needs a full git checkout of the repository")
    assert leaderboard.provenance_problems(tmp_path) == []
    assert main(["leaderboard", "--results", str(tmp_path), "--output", str(out), "--check"]) == 0

    dirty = record("x", 1, 0.6)
    dirty["code"] = {"git_commit": head, "git_dirty": True, "package_version": "0.1.0"}
    unknown = record("x", 2, 0.7)
    unknown["code"] = {"git_commit": "0" * 40, "git_dirty": False, "package_version": "0.1.0"}
    put(tmp_path, dirty)
    put(tmp_path, unknown)
    leaderboard.write(tmp_path, out)  # the file is current: provenance alone fails the check
    problems = leaderboard.provenance_problems(tmp_path)
    assert len(problems) == 2 and "uncommitted changes" in problems[0] and "not in this repository" in problems[1]
    assert main(["leaderboard", "--results", str(tmp_path), "--output", str(out), "--check"]) == 1


def test_committed_results_record_the_real_data_they_trained_on():
    """Every committed result from a run that cut the data names the real examples (paired comparisons
    rely on strategies of one seed sharing them), and strategies of one seed agree on them."""
    from bench.data import REPO_ROOT

    seen: dict[tuple, set[str]] = {}
    for _, r in iter_results(REPO_ROOT / "results"):
        if r["status"] != "ok":
            continue
        assert "real_data" in r, r["cell"]
        s, c = r["suite"], r["cell"]
        seen.setdefault((s["name"], s["version"], s["preset"], c["dataset"], c["budget"], c["seed"]), set()).add(
            r["real_data"]["fingerprint"])
    assert all(len(v) == 1 for v in seen.values())


@pytest.mark.parametrize("seconds, shown", [([1346.0, 1354.0], "1,350"), ([35.04, 35.0], "35"),
                                            ([0.001556], "0.00156"), ([123456.0], "123,000")])
def test_compute_columns_have_three_digits_and_no_exponent(seconds: list[float], shown: str) -> None:
    assert leaderboard._mean_compute([{"wall_seconds": s} for s in seconds], "wall_seconds") == shown
    assert leaderboard._mean_compute([{"wall_seconds": 1.0}, {}], "wall_seconds") == "—"


def test_a_result_reads_its_record_through_typed_properties(tmp_path):
    r = record("x", 3, 0.5, nll=0.25)
    r["config"] = {"seed": 3, "strategy": {"name": "x_base"}, "synthetic": {"budget_per_class": 20}}
    r["strategy_log"] = {"synthetic_examples": 40, "rounds": [{"round": 0}, "not a round"]}
    r["real_data"] = {"fingerprint": "f" * 64, "train_examples": 20, "val_examples": 4, "test_examples": 8}
    r["hardware"] = {"cpu": "some CPU"}
    put(tmp_path, r)
    (res,) = load_results(tmp_path)
    assert res.path == cell_path(tmp_path, "s", 1, "cpu", "d", 10, "x", 3) == res.cell_path(tmp_path)
    assert (res.suite, res.version, res.preset, res.primary_metric) == ("s", 1, "cpu", "accuracy")
    assert (res.dataset, res.budget, res.strategy, res.seed) == ("d", 10, "x", 3)
    assert res.group == ("s", 1, "cpu", "d", 10) and res.family == ("s", 1, "cpu")
    assert res.ok and res.status == "ok" and res.config_hash == config_hash(r["config"])
    assert (res.strategy_name, res.synthetic_budget, res.synthetic_examples) == ("x_base", 20.0, 40.0)
    assert res.value("accuracy") == 0.5 and res.value("per_class_accuracy") is None and res.value("nope") is None
    assert res.higher_is_better("nll") is False and res.higher_is_better("nope") is None
    assert res.metric_values() == {"accuracy": 0.5, "nll": 0.25, "per_class_accuracy": {"a": 0.5}}
    assert res.compute_number("wall_seconds") == 10.0 and res.compute_number("gpu_hours") is None
    assert (res.device_type, res.cpu) == ("cpu", "some CPU")
    assert res.rounds == [{"round": 0}]  # an entry that is not a mapping is no round
    assert (res.real_fingerprint, res.train_examples, res.test_examples) == ("f" * 64, 20.0, 8)
    assert (res.git_commit, res.git_dirty, res.rescored_metrics) == (None, None, [])
    assert res["cell"]["strategy"] == "x" and dict(res) == res.record  # a read-only mapping of the record
    # A record without the optional parts: no synthetic section is a synthetic budget of 0.
    bare = Result(record("y", 0, 0.5, status="error"))
    assert not bare.ok and bare.path is None and bare.synthetic_budget == 0.0 and bare.real_fingerprint is None
    assert bare.strategy_name is None and bare.rounds == [] and bare.value("accuracy") is None
    assert Result.of(bare) is bare and Result.of(bare.record) == bare


def test_results_group_by_cell_group_family_strategy_and_seed():
    records = [record("b", 1, 0.5), record("a", 0, 0.6), record("b", 0, 0.7)]
    other = record("a", 0, 0.8)
    other["cell"]["budget"] = "all"
    groups = by_group(records + [other])  # raw records are read as Results
    assert list(groups) == [("s", 1, "cpu", "d", 10), ("s", 1, "cpu", "d", "all")]
    assert [(r.strategy, r.seed) for r in groups[("s", 1, "cpu", "d", 10)]] == [("b", 1), ("a", 0), ("b", 0)]
    assert list(by_family(groups)) == [("s", 1, "cpu")]
    assert list(by_family(groups)[("s", 1, "cpu")]) == [("d", 10), ("d", "all")]
    by = by_strategy(records)
    assert list(by) == ["b", "a"] and [r.seed for r in by["b"]] == [1, 0]  # in the order given
    assert {k: r.value("accuracy") for k, r in by_seed(by["b"]).items()} == {1: 0.5, 0: 0.7}
    # per_class_accuracy is a mapping: not a scalar metric; directions as the records state them
    assert scalar_metrics(records) == {"accuracy": True, "nll": False}


def test_the_header_names_the_results_folder_it_was_made_from(tmp_path):
    """Not `results/` whatever --results was, and the report command that builds the linked pages."""
    text = leaderboard.render(tmp_path / "my-results")
    assert f"from the result files under `{(tmp_path / 'my-results').as_posix()}/`" in text
    assert f"`bench report --results {(tmp_path / 'my-results').as_posix()} --out docs/report`" in text
    assert "under `results/`" not in text


def test_cpu_hours_charge_the_shared_generator_fit_alike_and_say_how_much_it_is(tmp_path):
    """A strategy that read the shared generator from the cache is charged its fit (charged_cpu_seconds),
    and the fit's share is its own column; a strategy without a shared generator shows none."""
    for seed in range(2):
        r = record("sampler", seed, 0.6)
        r["compute"].update(charged_cpu_seconds=20.0 + 1800.0, generator_fit_cpu_seconds=1800.0)
        put(tmp_path, r)
        put(tmp_path, record("plain", seed, 0.5))
    text = leaderboard.render(tmp_path)
    head = next(line for line in text.splitlines() if line.startswith("| strategy"))
    columns = [c.strip() for c in head.strip("|").split("|")]
    row = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
           for line in text.splitlines() if line.startswith(("| sampler", "| plain"))}
    cpu, fit = columns.index("CPU h"), columns.index("of which shared fit")
    assert row["sampler"][cpu] == "0.506" and row["sampler"][fit] == "0.5"  # (20 + 1800) s and 1800 s
    assert row["plain"][cpu] == "0.00556" and row["plain"][fit] == "—"
