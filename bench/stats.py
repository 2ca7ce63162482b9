"""Paired statistics for the verdicts: is a strategy distinguishably better or worse than a reference?

The strategies of one seed share the real data (the same seeded budget, validation split and, where
a generator is used, the same fitted generator), so results are compared pair by pair over the seeds
that both strategies have with status ok. For each (strategy, reference) within one family (suite,
version, preset) and one (dataset, budget):

- the mean difference d = strategy - reference of the suite's primary metric, in the metric's own
  units, and a paired 95% confidence interval (Student's t, n - 1 degrees of freedom);
- p-values of the paired t-test (scipy.stats.ttest_rel) and of the Wilcoxon signed-rank test
  (scipy.stats.wilcoxon; exact for small n, so with 3 pairs its smallest p is 0.25: it is reported
  anyway, it just cannot reject);
- the Holm-adjusted paired-t p-value, the family being every comparison of one suite's verdict
  table (all strategies, every reference, all data sets and budgets of that suite and preset);
- a verdict: "better" or "worse" when the Holm-adjusted paired-t p < ALPHA, in the direction the
  metric's `higher_is_better` gives; "no detectable difference" otherwise; "too few pairs" below 2;
- the minimum detectable effect (MDE): the smallest true mean difference the paired t-test finds
  with POWER (80%) at two-sided ALPHA (0.05), given the observed SD of the differences and n pairs,
  from the noncentral t distribution;
- `seeds_needed`: the number of seeds at which a given effect becomes detectable at that SD.

The references are the strategies whose registered capabilities declare a `reference` rank
(bench.api.StrategyCaps), in ascending rank; the lowest rank present is the primary reference (the wins
table's). A strategy is a reference under its registered name only: one the registry does not know (an
uninstalled plug-in), or a variant under another id (one per synthetic budget of a frontier preset), is
compared, never compared against.

Differences are shown in points: one point is 0.01 of the metric (a percentage point for accuracy).
Everything here is a pure function of result records (bench.results.Result, or records as stored in
results/) and of the registered capabilities.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from bench.registry import STRATEGIES
from bench.results import Result, by_seed, by_strategy

ALPHA = 0.05  # two-sided significance level of every test and of the power computations
POWER = 0.80  # power at which the minimum detectable effect and the seeds needed are computed
POINT = 0.01  # one point of a metric, in the metric's units: a percentage point for accuracy
DEFAULT_EFFECT_POINTS = 1.0  # the effect `bench stats` and the leaderboard size the seeds for
MAX_SEEDS = 100_000  # search limit of seeds_needed; beyond it the answer is "more than this"

BETTER, WORSE, NO_DIFFERENCE, TOO_FEW = "better", "worse", "no detectable difference", "too few pairs"


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of two samples a and b (same length, pair i = seed i): d = a - b."""

    n: int
    mean: float  # mean of d, in the metric's units
    sd: float | None  # sample SD of d (ddof 1); None below 2 pairs
    ci_low: float | None  # 95% (1 - ALPHA) confidence interval of the mean of d
    ci_high: float | None
    p_t: float | None  # paired t-test, two-sided
    p_wilcoxon: float | None  # Wilcoxon signed-rank, two-sided


def paired_test(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> PairedTest:
    """Paired t-test, Wilcoxon signed-rank test and confidence interval of mean(a - b).

    Fewer than 2 pairs: no SD, CI or p-values. All differences zero: both p-values are 1 (scipy
    returns NaN or refuses, but the data show no difference at all). Differences all equal and
    non-zero: SD 0, the t statistic is infinite and scipy's p is 0, which is what the test says.
    """
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape or a_.ndim != 1:
        raise ValueError(f"paired samples need equal 1-d shapes, got {a_.shape} and {b_.shape}")
    d = a_ - b_
    n = len(d)
    if n == 0:
        raise ValueError("paired_test needs at least one pair")
    mean = float(d.mean())
    if n < 2:
        return PairedTest(n, mean, None, None, None, None, None)
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    if not np.any(d):
        p_t = p_w = 1.0
    else:
        with warnings.catch_warnings():  # nearly equal differences: scipy warns of precision loss, p is ~0 anyway
            warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
            p_t = 0.0 if sd == 0 else _finite(stats.ttest_rel(a_, b_).pvalue)  # sd 0: t is infinite
        # zero_method "wilcox" (the textbook test) drops zero differences before ranking.
        p_w = _finite(stats.wilcoxon(d).pvalue)
    return PairedTest(n, mean, sd, mean - half, mean + half, p_t, p_w)


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family-wise error rate), in the input order; None stays None and
    does not count in the family. Written here because statsmodels (multipletests) is not a
    dependency and scipy only offers false-discovery-rate control (false_discovery_control: BH/BY).

    Sorted p_(1) <= ... <= p_(m): adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):  # type: ignore[arg-type, return-value]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def power_paired_t(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs to detect a true mean difference `effect`
    when the differences have SD `sd`: P(|T| > t_crit) for T ~ noncentral t(n - 1, effect sqrt(n) / sd)."""
    if n < 2:
        return float("nan")
    if sd <= 0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    nc = abs(effect) * math.sqrt(n) / sd
    # P(T < -crit) as sf of the mirrored distribution: nct.cdf far in the left tail returns NaN for
    # small df (e.g. df 1, nc 8), while nct.sf(crit, df, -nc) is the same number and finite.
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def mde(sd: float | None, n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable effect: the smallest |true mean difference| that the two-sided paired t-test
    with n pairs detects with probability `power`, at the SD `sd` of the differences (same units as
    sd). None below 2 pairs; 0 when sd is 0 (any difference is then certain)."""
    if sd is None or n < 2:
        return None
    if sd == 0:
        return 0.0
    # Solve in standardised units (effect / sd): power rises monotonically from alpha at 0.
    f = lambda z: power_paired_t(z, 1.0, n, alpha) - power  # noqa: E731
    hi = 1.0
    while f(hi) < 0:  # n = 2 needs about 9 SDs (t_crit 12.7 with 1 degree of freedom)
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10)) * sd


def seeds_needed(effect: float, sd: float | None, alpha: float = ALPHA, power: float = POWER,
                 max_n: int = MAX_SEEDS) -> int | None:
    """Smallest number of seeds (pairs, at least 2) at which the paired t-test detects a true mean
    difference `effect` with probability `power`, at SD `sd` of the differences. None when sd is
    unknown or effect is 0, or when more than `max_n` would be needed."""
    if sd is None or effect == 0:
        return None
    enough = lambda n: power_paired_t(effect, sd, n, alpha) >= power - 1e-9  # noqa: E731  (slack: mde's root)
    if sd == 0 or enough(2):
        return 2
    if not enough(max_n):
        return None
    lo, hi = 2, max_n  # not enough(lo), enough(hi); power grows with n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def verdict(p_adjusted: float | None, mean: float, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """better / worse (adjusted p < alpha, direction from the metric) or no detectable difference."""
    if p_adjusted is None:
        return TOO_FEW
    if p_adjusted >= alpha or mean == 0:
        return NO_DIFFERENCE
    return BETTER if (mean > 0) == higher_is_better else WORSE


@dataclass(frozen=True)
class Comparison:
    """One row of a verdict table: `strategy` against `reference` on one (dataset, budget)."""

    suite: str
    version: int
    preset: str
    dataset: str
    budget: int | str  # n per class, or a budget form such as "all"
    metric: str
    higher_is_better: bool
    strategy: str
    reference: str
    seeds: tuple[int, ...]  # the paired seeds
    test: PairedTest
    p_holm: float | None  # Holm-adjusted paired-t p over the family (one suite, version, preset)
    verdict: str
    mde: float | None  # minimum detectable effect, metric units

    @property
    def family(self) -> tuple[str, int, str]:
        return (self.suite, self.version, self.preset)


def reference_rank(strategy: str) -> int | None:
    """The place of `strategy` among the references (0 first), from its registered capabilities; None
    for a strategy that is no reference or that the registry does not know."""
    return STRATEGIES.caps(strategy).reference if strategy in STRATEGIES else None


def references(strategies: Iterable[str]) -> tuple[str, ...]:
    """The references among `strategies`, in ascending rank (ties by name)."""
    ranked = {(rank, s) for s in strategies if (rank := reference_rank(s)) is not None}
    return tuple(s for _, s in sorted(ranked))


def primary_reference(strategies: Iterable[str]) -> str | None:
    """The reference of lowest rank among `strategies`; None where none is a reference."""
    refs = references(strategies)
    return refs[0] if refs else None


def _primary(results: Sequence[Result]) -> tuple[str, bool | None]:
    """The suite's primary metric and its direction, read from the metric records themselves."""
    name = results[0].primary_metric
    for r in results:
        higher = r.higher_is_better(name)
        if higher is not None:
            return name, higher
    return name, None


def compare_group(records: Sequence[Result | Mapping[str, Any]], alpha: float = ALPHA,
                  power: float = POWER) -> list[Comparison]:
    """Unadjusted comparisons (p_holm = p_t, verdict from it) of one (suite, version, preset, dataset,
    budget): every strategy against every reference present, paired by seed. `compare` adjusts them."""
    if not records:
        return []
    results = [Result.of(r) for r in records]
    first = results[0]
    metric, higher = _primary(results)
    if higher is None:  # no ok cell has the primary metric: nothing to compare
        return []
    strategy_results = {s: by_seed(rs) for s, rs in by_strategy(results).items()}
    # strategy -> seed -> primary metric value, for cells with status ok and a numeric value
    values = {s: {k: v for k, r in seeds.items() if r.ok and (v := r.value(metric)) is not None}
              for s, seeds in strategy_results.items()}
    # strategy -> seed -> fingerprint of the real examples the cell trained on (None where not recorded)
    real = {s: {k: r.real_fingerprint for k, r in seeds.items()} for s, seeds in strategy_results.items()}
    strategies = sorted(strategy_results)
    refs = references(strategies)
    out = []
    for ref in refs:
        for strat in strategies:
            if strat == ref or (strat in refs and refs.index(strat) < refs.index(ref)):
                continue  # two references are compared once: the later one against the earlier
            seeds = tuple(sorted(set(values[strat]) & set(values[ref])))
            # A pair is a pair only if both cells trained on the same real examples (where recorded).
            seeds = tuple(k for k in seeds if None in (real[strat].get(k), real[ref].get(k))
                          or real[strat][k] == real[ref][k])
            if not seeds:
                continue
            t = paired_test([values[strat][k] for k in seeds], [values[ref][k] for k in seeds], alpha)
            out.append(Comparison(first.suite, first.version, first.preset, first.dataset, first.budget, metric,
                                  higher, strat, ref, seeds, t, t.p_t, verdict(t.p_t, t.mean, higher, alpha),
                                  mde(t.sd, t.n, alpha, power)))
    return out


def group_order(key: tuple) -> tuple:
    """Sort key of a group key such as (suite, version, preset, dataset, budget) whose budgets may mix
    numbers (n per class) and budget forms ("all", "10%"): numbers first, in order, then forms."""
    return tuple((isinstance(x, str), x) for x in key)


def compare(groups: Mapping[tuple, Sequence[Result | Mapping[str, Any]]], alpha: float = ALPHA,
            power: float = POWER) -> dict[tuple[str, int, str], list[Comparison]]:
    """Verdict tables: family (suite, version, preset) -> comparisons over all its (dataset, budget)
    groups, with Holm-adjusted paired-t p-values across the family and verdicts from them.
    `groups` maps any key to the records of one (suite, version, preset, dataset, budget)."""
    families: dict[tuple[str, int, str], list[Comparison]] = defaultdict(list)
    for _, records in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        for comp in compare_group(records, alpha, power):
            families[comp.family].append(comp)
    out = {}
    for fam, comps in sorted(families.items()):
        adjusted = holm([c.test.p_t for c in comps])
        out[fam] = [replace(c, p_holm=p, verdict=verdict(p, c.test.mean, c.higher_is_better, alpha))
                    for c, p in zip(comps, adjusted)]
    return out


@dataclass(frozen=True)
class Wins:
    """SDGym-style counts for one strategy: in how many (suite, preset, dataset, budget) comparisons
    against `reference` it is significantly better, worse, or neither."""

    strategy: str
    reference: str
    comparisons: int
    better: int
    worse: int
    no_difference: int  # includes comparisons with too few pairs


def wins(families: Mapping[Any, Sequence[Comparison]], reference: str | None = None) -> list[Wins]:
    """Counts per strategy over every comparison against `reference` (default: the primary reference of
    `families`, from `compare`), sorted by better - worse, then name."""
    if reference is None:
        reference = primary_reference(c.reference for comps in families.values() for c in comps)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for comps in families.values():
        for c in comps:
            if c.reference == reference:
                counts[c.strategy][c.verdict] += 1
    rows = [Wins(s, reference, sum(k.values()), k[BETTER], k[WORSE], k[NO_DIFFERENCE] + k[TOO_FEW])
            for s, k in counts.items()]
    return sorted(rows, key=lambda w: (-(w.better - w.worse), -w.better, w.strategy))


def pooled_sd(comparisons: Iterable[Comparison]) -> tuple[float | None, int]:
    """SD of the paired differences pooled over comparisons (variances weighted by their degrees of
    freedom), and the most common number of pairs (ties: the larger). (None, n) below 2 pairs."""
    comps = list(comparisons)
    num = sum((c.test.n - 1) * c.test.sd ** 2 for c in comps if c.test.sd is not None)
    df = sum(c.test.n - 1 for c in comps if c.test.sd is not None)
    ns = Counter(c.test.n for c in comps)
    n = max(ns, key=lambda k: (ns[k], k)) if ns else 0
    return (math.sqrt(num / df) if df else None), n


def power_sentence(comparisons: Sequence[Comparison], effect_points: float = DEFAULT_EFFECT_POINTS,
                   alpha: float = ALPHA, power: float = POWER) -> str:
    """One line for a family: the MDE at its usual number of seeds and the seeds a given effect needs,
    both at the pooled SD of the paired differences, e.g. "With 3 seeds a difference under 2.1 points
    cannot be seen ...; detecting 1 point needs 14 seeds"."""
    sd, n = pooled_sd(comparisons)
    if sd is None:
        return "Too few paired seeds (below 2) to estimate the spread of the differences."
    m = mde(sd, n, alpha, power)
    need = seeds_needed(effect_points * POINT, sd, alpha, power)
    need_text = f"more than {MAX_SEEDS:,}" if need is None else str(need)
    return (f"With {n} seeds a difference under {points(m)} points cannot be seen "
            f"({power:.0%} power, two-sided alpha {alpha:g}, pooled SD of the paired differences "
            f"{points(sd)} points); detecting {effect_points:g} point{'' if effect_points == 1 else 's'} "
            f"needs {need_text} seeds (one test, before the Holm correction).")


def points(x: float | None, digits: int = 2) -> str:
    """A difference in metric units as points, `digits` significant figures, no exponent: 0.0213 -> "2.1"."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{float(f'{x / POINT:.{digits}g}'):g}"
