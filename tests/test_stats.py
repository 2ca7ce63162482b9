"""Paired statistics (bench/stats.py), the verdict tables in the leaderboard and `bench stats`."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from bench import leaderboard, stats
from bench.cli import main
from bench.config import config_hash
from bench.results import cell_path, write_result


def record(strategy: str, seed: int, value: float, *, status: str = "ok", metric: str = "accuracy",
           higher: bool = True, suite: str = "s", dataset: str = "d", budget: int = 10) -> dict:
    return {
        "schema_version": 1,
        "suite": {"name": suite, "version": 1, "preset": "cpu", "primary_metric": metric},
        "cell": {"dataset": dataset, "budget": budget, "strategy": strategy, "seed": seed},
        "config": {"seed": seed},
        "config_hash": config_hash({"seed": seed}),  # a reader refuses a hash that is not its config's
        "status": status,
        "error": None if status == "ok" else {"type": "RuntimeError", "message": "boom"},
        "metrics": {} if status != "ok" else {metric: {"value": value, "higher_is_better": higher}},
        "strategy_log": {},
        "compute": {"wall_seconds": 1.0, "cpu_seconds": 1.0, "cpu_hours": 1 / 3600, "peak_rss_bytes": 2**30,
                    "peak_rss_scope": "cell", "device": "cpu", "gpu_peak_memory_bytes": None, "gpu_hours": None},
        "code": {"git_commit": None, "git_dirty": None, "package_version": "0.1.0"},
        "packages": {},
        "hardware": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def put(root: Path, r: dict) -> None:
    s, c = r["suite"], r["cell"]
    write_result(cell_path(root, s["name"], s["version"], s["preset"], c["dataset"], c["budget"], c["strategy"],
                           c["seed"]), r)


# Per-seed accuracies: the real data of a seed moves every strategy (seed effect of several points),
# so only a paired comparison sees the +3-point gain of `good` and the -3-point loss of `bad`.
SEED_EFFECT = [0.00, 0.06, -0.04, 0.03, -0.05]
NOISE = [0.002, -0.003, 0.001, 0.004, -0.002]


def write_suite(root: Path, **kw) -> None:
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(root, record("real_only", seed, 0.70 + base, **kw))
        put(root, record("random_synthetic", seed, 0.70 + base - e, **kw))
        put(root, record("good", seed, 0.73 + base + e, **kw))
        put(root, record("bad", seed, 0.67 + base - 2 * e, **kw))
    put(root, record("partial", 0, 0.72, **kw))  # one seed only: too few pairs
    put(root, record("partial", 1, 0.0, status="error", **kw))  # an error cell is never paired


def test_paired_test_matches_scipy_and_a_hand_computation():
    a, b = [0.80, 0.82, 0.79], [0.78, 0.79, 0.78]  # differences 0.02, 0.03, 0.01: mean 0.02, SD 0.01
    t = stats.paired_test(a, b)
    assert t.n == 3 and t.mean == pytest.approx(0.02) and t.sd == pytest.approx(0.01)
    # t = 0.02 / (0.01 / sqrt 3) = sqrt 12 with 2 degrees of freedom, whose CDF is 1/2 + t / (2 sqrt(2 + t^2)):
    # two-sided p = 1 - sqrt(12 / 14) = 0.074180.
    assert t.p_t == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-9)
    assert t.p_t == pytest.approx(0.074180, abs=1e-6)
    assert t.p_t == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)
    # The 97.5% quantile of t(2) solves t / sqrt(2 + t^2) = 0.95: t = 0.95 sqrt(2 / 0.0975) = 4.30265.
    half = 0.95 * math.sqrt(2 / (1 - 0.95**2)) * 0.01 / math.sqrt(3)
    assert (t.ci_low, t.ci_high) == pytest.approx((0.02 - half, 0.02 + half), rel=1e-9)
    assert half == pytest.approx(0.024841, abs=1e-6)
    # Wilcoxon, exact: 3 positive differences, P(all signs +) = 1/8, two-sided 2/8.
    assert t.p_wilcoxon == pytest.approx(0.25) and t.p_wilcoxon == pytest.approx(sps.wilcoxon(np.subtract(a, b)).pvalue)


def test_paired_test_degenerate_inputs():
    one = stats.paired_test([0.5], [0.4])
    assert one.n == 1 and one.mean == pytest.approx(0.1) and one.sd is one.p_t is one.p_wilcoxon is one.ci_low is None
    assert stats.verdict(one.p_t, one.mean, True) == stats.TOO_FEW
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning leaks into `bench leaderboard`
        same = stats.paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])  # all differences zero
        assert (same.p_t, same.p_wilcoxon, same.sd, same.ci_low, same.ci_high) == (1.0, 1.0, 0.0, 0.0, 0.0)
        const = stats.paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # all differences 1: t is infinite
        assert const.p_t == 0.0 and const.p_wilcoxon == pytest.approx(0.25)
    with pytest.raises(ValueError):
        stats.paired_test([1.0, 2.0], [1.0])


def test_holm_on_known_examples():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # None is no test and no member of the family; adjusted p never exceeds 1 and never falls below a smaller p's.
    assert stats.holm([None, 0.2, 0.01]) == [None, pytest.approx(0.2), pytest.approx(0.02)]
    assert stats.holm([0.5, 0.01, 0.6, 0.02]) == pytest.approx([1.0, 0.04, 1.0, 0.06])
    assert stats.holm([]) == []


def test_mde_matches_the_normal_approximation_for_large_n():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.80)  # 2.8016: the z-test's effect in SDs at n = 1
    for n, rel in [(200, 0.01), (2000, 0.001)]:
        assert stats.mde(1.0, n) == pytest.approx(z / math.sqrt(n), rel=rel)
        assert stats.mde(1.0, n) > z / math.sqrt(n)  # the t-test needs a little more than the z-test
    assert stats.mde(2.5, 50) == pytest.approx(2.5 * stats.mde(1.0, 50))  # in units of the SD
    assert stats.mde(None, 5) is None and stats.mde(1.0, 1) is None and stats.mde(0.0, 3) == 0.0


@pytest.mark.parametrize("n", [3, 5])
def test_mde_has_80_percent_power_in_simulation(n):
    """At the MDE, the paired t-test rejects in 80% of simulated experiments (40,000: SE 0.002)."""
    effect = stats.mde(1.0, n)
    d = np.random.default_rng(n).normal(effect, 1.0, size=(40_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1)) == pytest.approx(0.80, abs=0.01)


def test_seeds_needed_inverts_the_mde():
    for n in (2, 3, 5, 12, 40):
        m = stats.mde(0.02, n)
        assert stats.seeds_needed(m, 0.02) == n
        assert stats.seeds_needed(m * 0.98, 0.02) > n
    assert stats.seeds_needed(0.01, 0.0) == 2
    assert stats.seeds_needed(0.01, None) is None
    assert stats.seeds_needed(1e-9, 1.0) is None  # beyond MAX_SEEDS


def test_verdict_respects_the_metric_direction():
    assert stats.verdict(0.01, 0.03, higher_is_better=True) == stats.BETTER
    assert stats.verdict(0.01, -0.03, higher_is_better=True) == stats.WORSE
    assert stats.verdict(0.01, -0.03, higher_is_better=False) == stats.BETTER  # e.g. a lower nll
    assert stats.verdict(0.05, 0.03, higher_is_better=True) == stats.NO_DIFFERENCE  # p must be below alpha
    assert stats.verdict(None, 0.03, higher_is_better=True) == stats.TOO_FEW


def test_points_formatting():
    assert stats.points(0.0213) == "2.1" and stats.points(1.234) == "120" and stats.points(None) == "—"


def test_verdict_table_from_result_files(tmp_path):
    write_suite(tmp_path)
    families = stats.compare(leaderboard.collect(tmp_path))
    (fam, comps), = families.items()
    assert fam == ("s", 1, "cpu")
    by = {(c.strategy, c.reference): c for c in comps}
    # real_only vs random_synthetic appears once, as random_synthetic vs real_only.
    assert set(by) == {("bad", "real_only"), ("good", "real_only"), ("partial", "real_only"),
                       ("random_synthetic", "real_only"), ("bad", "random_synthetic"),
                       ("good", "random_synthetic"), ("partial", "random_synthetic")}
    good, bad = by[("good", "real_only")], by[("bad", "real_only")]
    assert good.seeds == (0, 1, 2, 3, 4) and good.test.mean == pytest.approx(0.03 + np.mean(NOISE))
    assert good.verdict == stats.BETTER and bad.verdict == stats.WORSE
    assert by[("random_synthetic", "real_only")].verdict == stats.NO_DIFFERENCE
    partial = by[("partial", "real_only")]
    assert partial.seeds == (0,) and partial.verdict == stats.TOO_FEW and partial.p_holm is None
    # Holm over the family: the 5 comparisons with a p-value (the two with one pair have none).
    tested = [c for c in comps if c.test.p_t is not None]
    assert len(tested) == 5
    assert sorted(c.p_holm for c in tested) == pytest.approx(stats.holm(sorted(c.test.p_t for c in tested)))
    smallest = min(tested, key=lambda c: c.test.p_t)
    assert smallest.p_holm == pytest.approx(5 * smallest.test.p_t)
    assert good.mde == pytest.approx(stats.mde(good.test.sd, 5))
    # An unpaired test would not see it: the seed effect swamps the 3 points.
    a = [0.73 + b + e for b, e in zip(SEED_EFFECT, NOISE)]
    assert sps.ttest_ind(a, [0.70 + b for b in SEED_EFFECT]).pvalue > 0.3

    w = {x.strategy: x for x in stats.wins(families)}
    assert (w["good"].better, w["good"].worse, w["bad"].worse, w["partial"].no_difference) == (1, 0, 1, 1)
    assert stats.wins(families)[0].strategy == "good"

    text = leaderboard.render(tmp_path)
    assert "### Verdicts: s v1 · preset cpu" in text
    row = next(line for line in text.splitlines() if line.startswith("| good | real_only |"))
    pts = [x / stats.POINT for x in (good.test.mean, good.test.ci_low, good.test.ci_high)]
    assert row.split(" | ")[2:4] == ["5", f"{pts[0]:+.2f} [{pts[1]:+.2f}, {pts[2]:+.2f}]"]
    assert row.rstrip(" |").endswith(f"better | {good.mde / stats.POINT:.2f}")
    assert "| good | 1 | 1 | 0 | 0 |" in text  # the wins table
    assert "With 5 seeds a difference under" in text and "detecting 1 point needs" in text
    assert leaderboard.is_current(tmp_path, _written(tmp_path))


def test_references_come_from_the_strategies_capabilities(tmp_path):
    """References and their order are the registered `reference` ranks; a strategy the registry does not
    know, or a variant of a reference under another id, is none. Without the rank-0 reference, the next
    one is the primary reference of the wins table."""
    assert stats.references(["smote", "random_synthetic", "not_installed", "real_only_s2", "real_only"]) == (
        "real_only", "random_synthetic")
    assert stats.primary_reference(["good", "random_synthetic"]) == "random_synthetic"
    assert stats.primary_reference(["good", "not_installed"]) is None and stats.reference_rank("good") is None
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(tmp_path, record("random_synthetic", seed, 0.70 + base, suite="t"))
        put(tmp_path, record("good", seed, 0.73 + base + e, suite="t"))
    families = stats.compare(leaderboard.collect(tmp_path))
    (comp,) = families[("t", 1, "cpu")]
    assert (comp.strategy, comp.reference, comp.verdict) == ("good", "random_synthetic", stats.BETTER)
    assert [(w.strategy, w.reference, w.better) for w in stats.wins(families)] == [("good", "random_synthetic", 1)]
    assert "## Wins against random_synthetic across" in leaderboard.wins_table(families)
    assert leaderboard.wins_table({}) == ""


def _written(root: Path) -> Path:
    out = root.parent / f"{root.name}-LEADERBOARD.md"
    leaderboard.write(root, out)
    return out


def test_lower_is_better_primary_metric(tmp_path):
    for seed, base in enumerate(SEED_EFFECT):
        put(tmp_path, record("real_only", seed, 1.0 + base, metric="nll", higher=False))
        put(tmp_path, record("lower", seed, 0.9 + base + NOISE[seed], metric="nll", higher=False))
    (comps,) = stats.compare(leaderboard.collect(tmp_path)).values()
    (c,) = comps
    assert c.test.mean < 0 and c.verdict == stats.BETTER and not c.higher_is_better


def test_holm_family_spans_data_sets_and_budgets(tmp_path):
    write_suite(tmp_path)
    write_suite(tmp_path, dataset="e", budget=20)
    (comps,) = stats.compare(leaderboard.collect(tmp_path)).values()
    tested = [c for c in comps if c.test.p_t is not None]
    smallest = min(tested, key=lambda c: c.test.p_t)
    assert len(tested) == 10 and smallest.p_holm == pytest.approx(10 * smallest.test.p_t)  # one family of 10
    text = leaderboard.render(tmp_path)
    assert "| data | strategy | vs |" in text and "| e n20 | good | real_only |" in text
    assert sorted([("s", 1, "cpu", "d", "all"), ("s", 1, "cpu", "d", 100)], key=stats.group_order)[0][-1] == 100


def test_cli_stats(tmp_path, capsys):
    write_suite(tmp_path / "r")
    assert main(["stats", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Verdicts: s v1 · preset cpu") and "| good | real_only | 5 |" in out
    sd, n = stats.pooled_sd(next(iter(stats.compare(leaderboard.collect(tmp_path / "r")).values())))
    assert f"detecting 1 point needs {stats.seeds_needed(0.01, sd)} seeds" in out
    assert main(["stats", "--results", str(tmp_path / "r"), "--suite", "s", "--effect", "0.5"]) == 0
    assert f"detecting 0.5 points needs {stats.seeds_needed(0.005, sd)} seeds" in capsys.readouterr().out

    (tmp_path / "empty").mkdir()
    for argv in (["--results", str(tmp_path / "missing")], ["--results", str(tmp_path / "empty")],
                 ["--results", str(tmp_path / "r"), "--suite", "nope"], ["--effect", "-1"], ["--effect", "x"]):
        assert main(["stats", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("bench: error:") and err.count("\n") == 1, err


def test_cells_that_trained_on_different_real_data_are_not_paired():
    from bench.stats import compare_group

    recs = []
    for seed, (a, b) in enumerate([(0.50, 0.52), (0.60, 0.61), (0.55, 0.58)]):
        for strategy, value in (("real_only", a), ("smote", b)):
            r = record(strategy, seed, value)
            r["real_data"] = {"fingerprint": ("f" if strategy == "smote" and seed == 2 else "e") * 64,
                              "train_examples": 10, "val_examples": 5, "test_examples": 5}
            recs.append(r)
    (c,) = compare_group(recs)
    assert c.seeds == (0, 1)
