"""A frontier preset (several real budgets x several synthetic budgets): the method against its control
at each synthetic budget, and the real-data equivalent of each synthesising strategy (bench/stats.py)."""
from __future__ import annotations

import math

import pytest
from test_stats import record as base_record

from bench import leaderboard, stats
from bench.config import config_hash
from bench.results import Result, by_group

LOOP = {"tau": 0.8, "passes": 50, "max_rounds": 3}  # the loop's parameters, shared by the method and its control


def record(strategy: str, seed: int, value: float, *, budget: int = 50, name: str | None = None,
           params: dict | None = None, synthetic: int | None = None) -> dict:
    """One ok cell of suite s [frontier] on data set d; `name` is the registered strategy an id runs."""
    config = {"seed": seed, "budget": budget,
              "strategy": {"id": strategy, "name": name or strategy, "params": params or {}}}
    if synthetic is not None:
        config["synthetic"] = {"budget_per_class": synthetic, "mix_ratio": 0.5, "generator": {"name": "g"}}
    r = base_record(strategy, seed, value, budget=budget)
    r["suite"]["preset"] = "frontier"
    r["config"], r["config_hash"] = config, config_hash(config)
    return r


def variant(name: str, s: int, seed: int, value: float, guidance: bool, budget: int = 50, id: str | None = None,
            **extra) -> dict:
    """A cell of `name` at synthetic budget `s` per class (id `name`_s`s` unless given), with the loop's
    parameters."""
    params = {**LOOP, "budget_per_class": s, "guidance": guidance, **extra}
    return record(id or f"{name}_s{s}", seed, value, budget=budget, name=name, params=params, synthetic=s)


# --- the method against its control at each synthetic budget ---

SEED_EFFECT = [0.00, 0.05, -0.03, 0.02, -0.04]


def frontier_group() -> list[dict]:
    out = []
    for k, base in enumerate(SEED_EFFECT):
        out.append(record("real_only", k, 0.70 + base))
        for s, gain in ((50, 0.01), (100, 0.02)):
            out.append(variant("random_synthetic", s, k, 0.70 + base + gain + 0.002 * k, guidance=False))
            out.append(variant("active_synthesis", s, k, 0.72 + base + gain - 0.001 * k, guidance=True))
        # the same synthetic budget as active_synthesis_s100 but another tau: not its control
        out.append(variant("random_synthetic", 100, k, 0.69 + base, guidance=False, id="random_synthetic_tau", tau=0.5))
    return out


def _compared(records: list[dict]) -> list[stats.Comparison]:
    ((_, comps),) = stats.compare(by_group(Result.of(r) for r in records)).items()
    return comps


def test_control_pairs_match_the_synthetic_budget_and_the_parameters():
    pairs = stats.control_pairs([Result.of(r) for r in frontier_group()])
    assert pairs == [("active_synthesis_s100", "random_synthetic_s100"),
                     ("active_synthesis_s50", "random_synthetic_s50")]


def test_the_method_is_compared_with_its_control_at_each_synthetic_budget_in_the_same_holm_family():
    comps = _compared(frontier_group())
    against_control = {(c.strategy, c.reference): c for c in comps if stats.reference_rank(c.reference) is None}
    assert set(against_control) == {("active_synthesis_s50", "random_synthetic_s50"),
                                    ("active_synthesis_s100", "random_synthetic_s100")}
    c = against_control[("active_synthesis_s100", "random_synthetic_s100")]
    assert c.seeds == (0, 1, 2, 3, 4)
    assert c.test.mean == pytest.approx(0.02 - 0.003 * 2)  # mean over seeds of 0.02 - 0.003 k
    assert c.verdict == stats.BETTER
    # One Holm family: every tested comparison, the references' and the controls', adjusted together.
    raw = [c.test.p_t for c in comps]
    assert [c.p_holm for c in comps] == pytest.approx(stats.holm(raw))
    # The references' own comparisons are as before (the variants are compared with real_only only).
    assert {(c.strategy, c.reference) for c in comps if c.reference == "real_only"} == {
        (s, "real_only") for s in ("active_synthesis_s50", "active_synthesis_s100", "random_synthetic_s50",
                                   "random_synthetic_s100", "random_synthetic_tau")}
    table = leaderboard.verdict_table(("s", 1, "frontier"), comps)
    assert "| active_synthesis_s100 | random_synthetic_s100 | 5 |" in table


def test_a_control_under_its_registered_name_is_compared_once():
    """Without variants, the control is a reference and the method is compared with it once, as before."""
    records = [r for k, base in enumerate(SEED_EFFECT)
               for r in (record("real_only", k, 0.7 + base),
                         record("random_synthetic", k, 0.71 + base, params=dict(LOOP, guidance=False), synthetic=50),
                         record("active_synthesis", k, 0.72 + base, params=dict(LOOP, guidance=True), synthetic=50))]
    pairs = [(c.strategy, c.reference) for c in _compared(records)]
    assert pairs.count(("active_synthesis", "random_synthetic")) == 1
    assert stats.control_pairs([Result.of(r) for r in records]) == []


# --- the real-data equivalent ---

def test_interpolation_is_linear_in_log_budget():
    assert stats.real_equivalent([50, 200], [0.80, 0.90], 0.85) == pytest.approx(100.0)  # sqrt(50 * 200)
    assert stats.real_equivalent([50, 100, 200], [0.80, 0.84, 0.90], 0.87) == pytest.approx(math.sqrt(100 * 200))
    assert stats.real_equivalent([50, 100, 200], [0.80, 0.84, 0.90], 0.84) == pytest.approx(100.0)
    assert stats.real_equivalent([50, 100], [0.80, 0.84], 0.80) == 50.0
    assert stats.real_equivalent([50, 200], [0.50, 0.40], 0.45, higher_is_better=False) == pytest.approx(100.0)
    # a curve that is not monotone: the first crossing (the least real data that does as well)
    assert stats.real_equivalent([50, 100, 200], [0.80, 0.90, 0.85], 0.87) == pytest.approx(50 * 2 ** 0.7)


def test_outside_the_curve_it_says_so_rather_than_extrapolating():
    below = stats.real_equivalent([50, 100, 200], [0.80, 0.84, 0.90], 0.75)
    above = stats.real_equivalent([50, 100, 200], [0.80, 0.84, 0.90], 0.95)
    assert (below, above) == (stats.BELOW, stats.ABOVE)
    assert stats.real_per_class_text(below, (50, 100, 200)) == "below the smallest budget (50)"
    assert stats.real_per_class_text(above, (50, 100, 200)) == "above the largest (200)"
    assert stats.real_per_class_text(above, (50, 100, 200), bound=True) == "above 200"
    e = stats.RealEquivalent("s", 1, "frontier", "d", "accuracy", True, "x", 100, "real_only", (50, 100, 200),
                             (0, 1), 0.95, above, 150.0, above)
    assert stats.equivalent_text(e) == "above the largest (200) [150, above 200]"
    assert stats.ratio_text(e) == "> 2×"


def curve(b: float) -> float:
    """The true accuracy of real_only at b real examples per class: linear in log budget."""
    return 0.60 + 0.05 * math.log2(b / 50)


NOISE = [0.004, -0.006, 0.002, 0.005, -0.003, -0.001, 0.006, -0.004]
BUDGETS = (50, 100, 200, 400)


def equivalent_records(true_equivalent: float = 150.0) -> list[dict]:
    """real_only on the curve at every budget, and random_synthetic_s50 at 50 real per class as good as
    `true_equivalent` real per class; each seed moves every strategy alike (its real data)."""
    out = []
    for k, e in enumerate(NOISE):
        seed_effect = 0.03 * (-1) ** k
        for j, b in enumerate(BUDGETS):
            out.append(record("real_only", k, curve(b) + seed_effect + NOISE[(k + j) % len(NOISE)] / 2, budget=b))
        out.append(variant("random_synthetic", 50, k, curve(true_equivalent) + seed_effect + e, guidance=False))
    return out


def test_the_bootstrap_ci_contains_the_true_value_and_is_deterministic():
    (e,) = stats.real_equivalents(equivalent_records(150.0))
    assert (e.strategy, e.budget, e.curve, e.budgets, e.seeds) == ("random_synthetic_s50", 50, "real_only",
                                                                  BUDGETS, tuple(range(len(NOISE))))
    assert e.ci_low < 150.0 < e.ci_high
    assert e.ci_low <= e.equivalent <= e.ci_high
    assert abs(e.equivalent - 150.0) < 15  # the noise is small against the curve's slope
    assert stats.real_equivalents(equivalent_records(150.0)) == [e]  # the same resamples every time
    assert stats.ratio_text(e) == f"{e.equivalent / 50:.2g}×"


def test_the_equivalent_shows_in_the_leaderboard_and_needs_several_real_budgets():
    records = equivalent_records(150.0)
    table = leaderboard.equivalent_table(stats.real_equivalents(records))
    assert "### Real-data equivalent: s v1 · preset frontier" in table
    assert "| random_synthetic_s50 | 50 |" in table
    one_budget = [r for r in records if r["cell"]["budget"] == 50]
    assert stats.real_equivalents(one_budget) == []
    assert leaderboard.equivalent_table([]) == ""
