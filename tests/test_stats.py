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
from bench.results import Result, cell_path, write_result


def record(strategy: str, seed: int, value: float, *, status: str = "ok", metric: str = "accuracy",
           higher: bool = True, suite: str = "s", dataset: str = "d", budget: int = 10, log: dict | None = None) -> dict:
    return {
        "schema_version": 1,
        "suite": {"name": suite, "version": 1, "preset": "cpu", "primary_metric": metric},
        "cell": {"dataset": dataset, "budget": budget, "strategy": strategy, "seed": seed},
        "config": {"seed": seed},
        "config_hash": config_hash({"seed": seed}),  # a reader refuses a hash that is not its config's
        "status": status,
        "error": None if status == "ok" else {"type": "RuntimeError", "message": "boom"},
        "metrics": {} if status != "ok" else {metric: {"value": value, "higher_is_better": higher}},
        "strategy_log": log or {},
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
    assert stats.verdict(0.05, 0.03, higher_is_better=True) == stats.INCONCLUSIVE  # p must be below alpha
    assert stats.verdict(0.05, 0.003, higher_is_better=True, p_tost=0.01) == stats.EQUIVALENT  # TOST: inside the margin
    assert stats.verdict(0.05, 0.003, higher_is_better=True, p_tost=0.05) == stats.INCONCLUSIVE
    assert stats.verdict(0.01, 0.003, higher_is_better=True, p_tost=0.01) == stats.BETTER  # significance comes first
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
    # random_synthetic differs from real_only by the noise alone (SD 0.3 points): its 90% CI lies inside ±1 point.
    assert by[("random_synthetic", "real_only")].verdict == stats.EQUIVALENT
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
    assert (w["good"].better, w["good"].worse, w["bad"].worse, w["partial"].inconclusive) == (1, 0, 1, 1)
    assert w["random_synthetic"].equivalent == 1
    assert stats.wins(families)[0].strategy == "good"

    text = leaderboard.render(tmp_path)
    assert "### Verdicts: s v1 · preset cpu" in text
    row = next(line for line in text.splitlines() if line.startswith("| good | real_only |"))
    pts = [x / stats.POINT for x in (good.test.mean, good.test.ci_low, good.test.ci_high)]
    assert row.split(" | ")[2:5] == ["5", "0/5", f"{pts[0]:+.2f} [{pts[1]:+.2f}, {pts[2]:+.2f}]"]
    assert row.rstrip(" |").endswith(f"better | {good.mde / stats.POINT:.2f}")
    assert "| good | 1 | 1 | 0 | 0 | 0 | 0 |" in text  # the wins table
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


# ------------------------------------------------------------------ equivalence, identical models, controls


def test_tost_matches_scipy_and_the_90_percent_ci():
    """TOST's p is the larger of two one-sided paired t-tests against -margin and +margin, and it is below
    0.05 exactly when the 90% CI of the mean difference lies inside the margin."""
    rng = np.random.default_rng(0)
    margin, outcomes = 0.01, set()
    for _ in range(200):
        n = int(rng.integers(3, 8))
        b = rng.normal(0.7, 0.05, n)
        a = b + rng.normal(rng.uniform(-0.015, 0.015), rng.uniform(0.001, 0.01), n)
        t = stats.paired_test(a, b, margin=margin)
        above = sps.ttest_rel(a, b - margin, alternative="greater").pvalue  # H0: mean(a - b) <= -margin
        below = sps.ttest_rel(a, b + margin, alternative="less").pvalue  # H0: mean(a - b) >= +margin
        assert t.p_tost == pytest.approx(max(above, below), rel=1e-9)
        lo, hi = sps.t.interval(0.90, n - 1, loc=np.mean(a - b), scale=sps.sem(a - b))
        assert (t.p_tost < 0.05) == (-margin < lo and hi < margin)
        outcomes.add(t.p_tost < 0.05)
    assert outcomes == {True, False}
    assert stats.paired_test([0.5, 0.6], [0.5, 0.5]).p_tost is None  # no margin, no TOST


def test_equivalent_against_inconclusive_on_constructed_samples():
    b = [0.70, 0.76, 0.66, 0.73, 0.65]
    close = np.add(b, NOISE)  # differences: mean +0.04 points, SD 0.29 points
    noisy = np.add(b, np.multiply(NOISE, 10))  # mean +0.4 points, SD 2.9 points
    tc, tn = stats.paired_test(close, b, margin=0.01), stats.paired_test(noisy, b, margin=0.01)
    assert tc.p_tost < 0.001 and stats.verdict(tc.p_t, tc.mean, True, tc.p_tost) == stats.EQUIVALENT
    assert tn.p_t > 0.05 and tn.p_tost > 0.05 and stats.verdict(tn.p_t, tn.mean, True, tn.p_tost) == stats.INCONCLUSIVE
    assert stats.paired_test(noisy, b, margin=0.05).p_tost < 0.05  # within a 5-point margin it is equivalent
    # SD 0: the mean is certain (scipy's t would be infinite or NaN).
    assert stats.tost([0.005] * 3, 0.01) == 0.0 and stats.tost([0.02] * 3, 0.01) == 1.0
    with pytest.raises(ValueError):
        stats.tost([0.1, 0.2], 0.0)


ROUND0 = {"returned_round": 0, "synthetic_examples": 40, "rounds": [{"round": 0, "synthetic_total": 0},
                                                                    {"round": 1, "synthetic_total": 40}]}
KEPT = {"returned_round": 1, "synthetic_examples": 50, "rounds": [{"round": 0, "synthetic_total": 0},
                                                                  {"round": 1, "synthetic_total": 20},
                                                                  {"round": 2, "synthetic_total": 50}]}


def test_identical_models_are_no_test(tmp_path):
    """Two loops that both returned round 0 in every seed, or every difference exactly 0: identical, with no
    p, CI or MDE, and no member of the Holm family. A loop that returned round 0 against real_only (round 0
    by construction) is counted, but tested: older results trained the two differently."""
    for seed, (base, e) in enumerate(zip(SEED_EFFECT[:3], NOISE)):
        put(tmp_path, record("real_only", seed, 0.70 + base))
        put(tmp_path, record("random_synthetic", seed, 0.70 + base + e, log=ROUND0))
        put(tmp_path, record("loop_b", seed, 0.71 + base, log=ROUND0))  # its number differs, its model does not
        put(tmp_path, record("loop_c", seed, 0.73 + base - e, log=KEPT if seed == 0 else ROUND0))
        put(tmp_path, record("twin", seed, 0.70 + base))  # no rounds; every difference exactly 0
        put(tmp_path, record("good", seed, 0.73 + base + e))
    (comps,) = stats.compare(leaderboard.collect(tmp_path)).values()
    by = {(c.strategy, c.reference): c for c in comps}
    loop_b, twin = by[("loop_b", "random_synthetic")], by[("twin", "real_only")]
    assert (loop_b.verdict, loop_b.round0, loop_b.p_holm, loop_b.mde) == (stats.IDENTICAL, 3, None, None)
    assert stats.verdict_text(loop_b) == "identical models (round 0 returned in 3 of 3 seeds)"
    assert stats.delta_text(loop_b) == f"{loop_b.test.mean / stats.POINT:+.2f}"  # no CI of width 0
    assert (twin.verdict, twin.round0) == (stats.IDENTICAL, 0)
    assert stats.verdict_text(twin) == "identical (all 3 differences exactly 0)" and stats.delta_text(twin) == "+0.00"
    rs = by[("random_synthetic", "real_only")]
    assert rs.round0 == 3 and rs.verdict != stats.IDENTICAL and rs.mde is not None
    assert by[("loop_c", "random_synthetic")].round0 == 2 and by[("loop_c", "random_synthetic")].verdict != stats.IDENTICAL
    tested = [c for c in comps if c.p_holm is not None]
    assert {c.strategy for c in comps if c.verdict == stats.IDENTICAL} == {"loop_b", "twin"}
    assert len(tested) == len(comps) - 2
    smallest = min(tested, key=lambda c: c.test.p_t)
    assert smallest.p_holm == pytest.approx(min(1.0, len(tested) * smallest.test.p_t))
    assert stats.pooled_sd(comps) == stats.pooled_sd(tested)  # identical models say nothing of the noise

    text = leaderboard.render(tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| loop_b | random_synthetic |"))
    assert row.endswith(" | — | — | — | identical models (round 0 returned in 3 of 3 seeds) | — |")
    assert "| loop_b | random_synthetic | 3 | 3/3 |" in row
    # The per-strategy table: the synthetic examples in the returned model (round 1 of seed 0: 20), not the
    # 50 the loop generated; the round each seed returned.
    row = next(line for line in text.splitlines() if line.startswith("| loop_c | 0."))
    assert " | 6.67 (synthetic data kept in 1 of 3 seeds) | " in row
    assert " | 0 (synthetic data kept in 0 of 3 seeds) | " in next(
        line for line in text.splitlines() if line.startswith("| loop_b | 0."))
    rounds = next(line for line in text.splitlines() if line.startswith("| round returned by seed |"))
    names = next(line for line in text.splitlines() if line.startswith("| metric |")).strip("| ").split(" | ")[1:]
    cells = dict(zip(names, rounds.strip("| ").split(" | ")[1:]))
    assert (cells["loop_c"], cells["loop_b"], cells["real_only"]) == ("1, 0, 0", "0, 0, 0", "—")
    synthetic = dict(KEPT, synthetic_in_returned_model=7)  # where the log says it, it counts
    assert leaderboard.synthetic_in_model(Result.of(record("x", 0, 0.5, log=synthetic))) == 7


def test_a_loop_without_synthetic_data_is_not_said_to_keep_any(tmp_path):
    """loop_real_only returns a later round (extra training) with no synthetic example in it: its row says
    so, not "synthetic data kept in 3 of 3 seeds"; a synthesising loop counts seeds whose returned model
    holds synthetic data."""
    no_synthetic = {"returned_round": 1, "synthetic_examples": 0,
                    "rounds": [{"round": 0, "synthetic_total": 0}, {"round": 1, "synthetic_total": 0}]}
    for seed, base in enumerate(SEED_EFFECT[:3]):
        put(tmp_path, record("real_only", seed, 0.70 + base))
        put(tmp_path, record("loop_none", seed, 0.71 + base, log=no_synthetic))
        put(tmp_path, record("loop_kept", seed, 0.72 + base, log=KEPT if seed < 2 else ROUND0))
    text = leaderboard.render(tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| loop_none | 0."))
    assert " | 0 (round > 0 returned in 3 of 3 seeds; no synthetic data) | " in row
    row = next(line for line in text.splitlines() if line.startswith("| loop_kept | 0."))
    assert " | 13.3 (synthetic data kept in 2 of 3 seeds) | " in row


@pytest.fixture
def controls(monkeypatch):
    """Strategies registered for one test, of kind control: a positive one (more real data, like an
    oracle), a negative one (must never help) and one without a role (an ablation)."""
    from bench.api import StrategyCaps
    from bench.registry import STRATEGIES

    for name, role in (("t_oracle", "positive"), ("t_placebo", "negative"), ("t_ablation", None)):
        monkeypatch.setitem(STRATEGIES._entries, name, object)
        monkeypatch.setitem(STRATEGIES._meta, name, StrategyCaps(kind="control", control_role=role))


def _family(root: Path) -> tuple[tuple, list]:
    ((fam, comps),) = stats.compare(leaderboard.collect(root)).items()
    return fam, comps


def test_power_line_with_a_detected_positive_control(tmp_path, controls):
    write_suite(tmp_path)
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(tmp_path, record("t_oracle", seed, 0.75 + base + e))  # 5 points from more real data
    fam, comps = _family(tmp_path)
    by = {(c.strategy, c.reference): c for c in comps}
    oracle = by[("t_oracle", "real_only")]
    assert oracle.verdict == stats.BETTER
    assert by[("random_synthetic", "real_only")].verdict == stats.EQUIVALENT  # the check passed: it stands
    (line,) = stats.control_sentences(comps)
    assert line == (f"Power check: the positive control t_oracle vs real_only: {stats.delta_text(oracle)} points "
                    "(95% CI), detected (better): this suite can see an effect of real data.")
    text = leaderboard.render(tmp_path)
    assert text.index("### Verdicts: s v1") < text.index(line) < text.index("| strategy | vs |")  # it opens the table


def test_power_line_with_an_undetected_positive_control_makes_equivalence_inconclusive(tmp_path, controls):
    write_suite(tmp_path)
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(tmp_path, record("t_oracle", seed, 0.705 + base + 5 * e))  # half a point, lost in the noise
    fam, comps = _family(tmp_path)
    by = {(c.strategy, c.reference): c for c in comps}
    assert by[("t_oracle", "real_only")].verdict == stats.INCONCLUSIVE
    rs = by[("random_synthetic", "real_only")]
    assert rs.test.p_tost < stats.ALPHA and rs.verdict == stats.INCONCLUSIVE and rs.unpowered
    assert by[("good", "real_only")].verdict == stats.BETTER  # a detected difference stays detected
    (line,) = stats.control_sentences(comps)
    assert line.startswith("Power check: the positive control t_oracle vs real_only: ")
    assert line.endswith("not detected (inconclusive): this suite cannot see even the effect of more real data, so "
                         "its verdicts are inconclusive by design (1 equivalent verdict shown as inconclusive).")
    table = leaderboard.verdict_table(fam, comps)
    assert line in table and "| random_synthetic | real_only | 5 |" in table and " equivalent |" not in table
    assert all(w.equivalent == 0 for w in stats.wins(stats.compare(leaderboard.collect(tmp_path))))


def test_power_line_without_a_positive_control(tmp_path):
    write_suite(tmp_path)
    write_suite(tmp_path, dataset="e")  # one line for the whole table, not one per data set
    _, comps = _family(tmp_path)
    assert stats.control_sentences(comps) == [
        "Power check: no positive control ran (a strategy registered with control_role \"positive\", compared with "
        "real_only), so nothing shows that this suite can see an effect at all."]
    assert stats.EQUIVALENT in {c.verdict for c in comps}  # nothing checked them, nothing changes them


def test_controls_form_a_block_and_a_negative_control_that_helps_is_flagged(tmp_path, controls):
    write_suite(tmp_path)
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(tmp_path, record("t_placebo", seed, 0.73 + base + e))  # helps as much as `good`: it must not
        put(tmp_path, record("t_ablation", seed, 0.70 + base + 2 * e))
    fam, comps = _family(tmp_path)
    placebo = next(c for c in comps if (c.strategy, c.reference) == ("t_placebo", "real_only"))
    assert placebo.verdict == stats.BETTER and stats.verdict_text(placebo) == "better ⚠ NEGATIVE CONTROL"
    alarms = stats.control_sentences(comps)[1:]
    assert alarms and alarms[0].startswith("⚠ **NEGATIVE CONTROL COMES OUT BETTER: t_placebo vs real_only, +")
    table = leaderboard.verdict_table(fam, comps)
    rows = table.splitlines()
    at = rows.index("#### Controls")
    first = lambda lines: {r.split(" | ")[0][2:] for r in lines if r.startswith("| ")}  # noqa: E731
    assert first(rows[:at]) == {"strategy", "good", "bad", "partial", "random_synthetic"}
    assert first(rows[at:]) == {"strategy", "t_placebo", "t_ablation"}
    assert "| t_placebo | real_only | 5 | 0/5 |" in table and "| better ⚠ NEGATIVE CONTROL |" in table
    wins = leaderboard.wins_table(stats.compare(leaderboard.collect(tmp_path)))
    names = [line.split(" | ")[0][2:] for line in wins.splitlines() if line.startswith("| ")][1:]
    assert names[-2:] == ["t_placebo (control)", "t_ablation (control)"]  # after the methods and baselines


def test_wins_count_every_verdict(tmp_path):
    write_suite(tmp_path)  # good better, bad worse, random_synthetic equivalent, partial too few pairs
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(tmp_path, record("noisy", seed, 0.70 + base + 10 * e))  # inconclusive
        put(tmp_path, record("twin", seed, 0.70 + base))  # identical to real_only
    families = stats.compare(leaderboard.collect(tmp_path))
    w = {x.strategy: x for x in stats.wins(families)}
    counts = lambda x: (x.better, x.worse, x.equivalent, x.inconclusive, x.identical)  # noqa: E731
    assert counts(w["good"]) == (1, 0, 0, 0, 0) and counts(w["bad"]) == (0, 1, 0, 0, 0)
    assert counts(w["random_synthetic"]) == (0, 0, 1, 0, 0) and counts(w["noisy"]) == (0, 0, 0, 1, 0)
    assert counts(w["partial"]) == (0, 0, 0, 1, 0) and counts(w["twin"]) == (0, 0, 0, 0, 1)  # too few: inconclusive
    assert all(x.comparisons == 1 and x.reference == "real_only" for x in w.values())
    text = leaderboard.wins_table(families)
    assert "| strategy | comparisons | better | worse | equivalent | inconclusive | identical |" in text
    assert "| twin | 1 | 0 | 0 | 0 | 0 | 1 |" in text and "| random_synthetic | 1 | 0 | 0 | 1 | 0 | 0 |" in text


SUITE_FILE = """
name: s
version: 1
primary_metric: accuracy
datasets: [cifar10]
budgets: [10]
val_per_class: 2
model: {name: small_cnn, params: {width: 4}}
strategies: [real_only]
metrics: [accuracy]
seeds: [0, 1]
MARGIN
presets:
  wide: {equivalence_margin: 5}
"""


def _suite_file(tmp_path: Path, margin: str | None) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE_FILE.replace("MARGIN", "" if margin is None else f"equivalence_margin: {margin}"))
    return path


def test_the_margin_comes_from_the_suite_file_or_the_default(tmp_path, monkeypatch):
    from bench.registry import SUITES

    results = tmp_path / "results"
    for seed, (base, e) in enumerate(zip(SEED_EFFECT, NOISE)):
        put(results, record("real_only", seed, 0.70 + base))
        put(results, record("near", seed, 0.71 + base + 5 * e))  # 1.2 points, SD 1.5: inside ±3, not inside ±1
    assert stats.equivalence_margin("s", "cpu") == (1.0, "the default: suite s is not registered here")
    (c,) = next(iter(stats.compare(leaderboard.collect(results)).values()))
    assert (c.verdict, c.margin) == (stats.INCONCLUSIVE, pytest.approx(0.01))
    assert "inside ±1 point (the default: suite s is not registered here; TOST" in leaderboard.render(results)

    monkeypatch.setitem(SUITES._entries, "s", str(_suite_file(tmp_path, "3")))
    assert stats.equivalence_margin("s", "cpu") == (3.0, "the equivalence_margin of suite s")
    assert stats.equivalence_margin("s", "wide") == (5.0, "the equivalence_margin of suite s")  # a preset may set it
    assert stats.equivalence_margin("s", "tpu")[1].startswith("the default: suite s [tpu] does not load here (")
    (c,) = next(iter(stats.compare(leaderboard.collect(results)).values()))
    assert (c.verdict, c.margin) == (stats.EQUIVALENT, pytest.approx(0.03))
    assert "inside ±3 points (the equivalence_margin of suite s; TOST" in leaderboard.render(results)

    monkeypatch.setitem(SUITES._entries, "s", str(_suite_file(tmp_path, None)))
    assert stats.equivalence_margin("s", "cpu") == (1.0, "the default: suite s declares no equivalence_margin")


@pytest.mark.parametrize("value,message", [
    ("0", "Input should be greater than 0"), ("-1", "Input should be greater than 0"),
    (".nan", "Input should be a finite number"), (".inf", "Input should be a finite number"),
    ("60", "Input should be less than or equal to 50"), ("true", "Input should be a valid number"),
    ("'2'", "Input should be a valid number"), ("null", "Input should be a valid number"),
])
def test_a_bad_margin_is_a_one_line_error(tmp_path, value, message):
    from bench.config import load_suite
    from bench.errors import BenchError

    with pytest.raises(BenchError) as exc:
        load_suite(str(_suite_file(tmp_path, value)))
    assert f"equivalence_margin: {message}" in str(exc.value) and "\n" not in str(exc.value)


def test_the_margin_is_no_part_of_a_cells_config_hash(tmp_path):
    """Results are keyed by their config hash: a margin judges results, it must not make them stale."""
    from bench.cells import expand_cells
    from bench.config import load_suite

    plain = [c.hash for c in expand_cells(load_suite(str(_suite_file(tmp_path, None))))]
    assert [c.hash for c in expand_cells(load_suite(str(_suite_file(tmp_path, "2.5"))))] == plain


# The chance check: registered data sets give the test split's classes (DatasetCaps.test_per_class).
# adult: 11,360 and 3,700 test examples; cifar10: 1,000 of each of 10 classes; imdb: 12,500 of each of 2.


def test_chance_levels_of_accuracy_and_balanced_accuracy():
    adult = [Result.of(record("real_only", 0, 0.8, dataset="adult"))]
    majority, basis = stats.chance_level(adult, "accuracy")
    assert majority == pytest.approx(11360 / 15060) and "majority class" in basis  # the best constant prediction
    assert stats.chance_level(adult, "balanced_accuracy")[0] == pytest.approx(1 / 2)  # 1/C whatever the mix
    assert stats.chance_level(adult, "exact_match")[0] == pytest.approx(11360 / 15060)  # accuracy on options
    assert stats.chance_level(adult, "auroc")[0] == 0.5  # a coin's ranking, whatever the mix
    assert stats.chance_level(adult, "macro_f1") is None and stats.chance_level(adult, "nll") is None  # none defined
    subset = record("real_only", 0, 0.8, dataset="adult")
    subset["config"]["test_per_class"] = 100  # the suite's balanced test subset: 100 of each class
    assert stats.chance_level([Result.of(subset)], "accuracy")[0] == pytest.approx(1 / 2)
    other = record("real_only", 0, 0.8, dataset="adult")
    other["real_data"] = {"test_examples": 999}  # other loader parameters: the declared counts do not hold
    assert stats.chance_level([Result.of(other)], "accuracy") is None
    assert stats.chance_level([Result.of(record("real_only", 0, 0.8))], "accuracy") is None  # "d": unknown


def write_chance_suite(root: Path) -> None:
    """One family, two groups: on cifar10 real_only is at chance (about 0.10 of 10 balanced classes), on
    imdb it is well above (0.80 against 0.5); `good` gains 3 points in every seed on both."""
    for seed, (low, high) in enumerate([(0.095, 0.80), (0.110, 0.82), (0.102, 0.78)]):
        for dataset, base in (("cifar10", low), ("imdb", high)):
            put(root, record("real_only", seed, base, dataset=dataset))
            put(root, record("good", seed, base + 0.03 + NOISE[seed], dataset=dataset))


def test_a_group_at_chance_gets_the_line_and_no_verdicts(tmp_path, capsys):
    write_chance_suite(tmp_path)
    fam, comps = _family(tmp_path)
    at = next(c for c in comps if c.dataset == "cifar10")
    assert (at.verdict, at.p_holm, at.mde) == (stats.AT_CHANCE, None, None)
    assert stats.verdict_text(at) == "no verdict: at chance"
    assert at.at_chance.level == pytest.approx(0.1) and not at.at_chance.beaten
    mean, _, low, high = stats.mean_ci([0.095, 0.110, 0.102])
    lines = stats.control_sentences(comps)
    assert lines[0] == (f"At chance (cifar10 n10): the task model has not learned the task (real_only accuracy mean "
                        f"{mean:.4f}, 95% CI [{low:.4f}, {high:.4f}] over 3 seeds, chance 0.1000: the majority class's "
                        "share of the 10,000 test examples), so no verdict is given there.")
    table = leaderboard.verdict_table(fam, comps)
    assert lines[0] in table and "| cifar10 n10 |" not in table  # no rows for the group at chance
    families = stats.compare(leaderboard.collect(tmp_path))
    assert [(w.strategy, w.comparisons, w.better) for w in stats.wins(families)] == [("good", 1, 1)]  # imdb only
    assert main(["stats", "--results", str(tmp_path)]) == 0
    assert lines[0] in capsys.readouterr().out


def test_a_group_above_chance_keeps_its_verdicts(tmp_path):
    write_chance_suite(tmp_path)
    fam, comps = _family(tmp_path)
    kept = next(c for c in comps if c.dataset == "imdb")
    assert (kept.verdict, kept.at_chance) == (stats.BETTER, None)
    assert not any(line.startswith("At chance (imdb") for line in stats.control_sentences(comps))
    assert "| imdb n10 | good | real_only | 3 |" in leaderboard.verdict_table(fam, comps)
    results = [r for rs in leaderboard.collect(tmp_path).values() for r in rs if r.dataset == "imdb"]
    assert stats.chance_check(results, "accuracy", True).beaten  # CI above 0.5
