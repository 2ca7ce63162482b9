"""Paired statistics for the verdicts: is a strategy better, worse, or practically the same as a reference?

The strategies of one seed share the real data (the same seeded budget, validation split and, where
a generator is used, the same fitted generator), so results are compared pair by pair over the seeds
that both strategies have with status ok. For each (strategy, reference) within one family (suite,
version, preset) and one (dataset, budget):

- the mean difference d = strategy - reference of the suite's primary metric, in the metric's own
  units, and a paired 95% confidence interval (Student's t, n - 1 degrees of freedom);
- p-values of the paired t-test (scipy.stats.ttest_rel) and of the Wilcoxon signed-rank test
  (scipy.stats.wilcoxon; exact for small n, so with 3 pairs its smallest p is 0.25: it is reported
  anyway, it just cannot reject);
- the Holm-adjusted paired-t p-value, the family being every tested comparison of one suite's verdict
  table (all strategies, every reference, all data sets and budgets of that suite and preset);
- the TOST p-value (two one-sided paired t-tests, scipy.stats.ttest_1samp of the differences against
  -margin and +margin): below ALPHA exactly when the 90% CI of the mean difference lies inside
  (-margin, +margin). The margin of practical equivalence is the suite's `equivalence_margin` (points;
  bench.config, default DEFAULT_EQUIVALENCE_MARGIN), read from the registered suite file;
- a verdict, one of five:
  "better" / "worse"  the Holm-adjusted paired-t p < ALPHA, in the direction the metric's
                      `higher_is_better` gives (a significant difference inside the margin is still
                      better or worse: its Δ shows how small it is);
  "equivalent"        otherwise, when TOST rejects both one-sided nulls at ALPHA (per comparison, not
                      Holm-adjusted: the 90% CI inside the margin);
  "inconclusive"      neither: the data cannot tell a difference from none;
  "identical"         the two models are the same, so there is nothing to test (no CI, no MDE, no member
                      of the Holm family): every paired difference is exactly 0, or both are loop
                      strategies that returned their round-0 model (trained on the real data alone) in
                      every paired seed;
  and "too few pairs" below 2 paired seeds;
- the minimum detectable effect (MDE): the smallest true mean difference the paired t-test finds
  with POWER (80%) at two-sided ALPHA (0.05), given the observed SD of the differences and n pairs,
  from the noncentral t distribution;
- `seeds_needed`: the number of seeds at which a given effect becomes detectable at that SD.

The references are the strategies whose registered capabilities declare a `reference` rank
(bench.api.StrategyCaps), in ascending rank; the lowest rank present is the primary reference (the wins
table's). A strategy is a reference under its registered name only: one the registry does not know (an
uninstalled plug-in), or a variant under another id (one per synthetic budget of a frontier preset), is
compared, never compared against, with one exception: a variant of the method's control (a reference that
declares `control_of` the method) is compared with the method's variant at the same setting, the same
recorded parameters less the method's `targeting_params` and the same `synthetic` section, so at each
synthetic budget (`control_pairs`; the same paired test, in the same Holm family). The same holds for the controls (`kind` "control", shown in a block of
their own) and their `control_role`: a positive control (more real data) must come out better than the
primary reference; where it does not, that (dataset, budget) cannot see even an effect of real data, and
its "equivalent" verdicts become "inconclusive" (`check_power`). A negative control that comes out better
is an alarm (`control_sentences`).

The chance check: where the primary reference does not beat chance on a (dataset, budget), the task
model has not learned the task, and no verdict there means anything. Chance is the level a model that
learned nothing reaches, declared by the metric (`MetricCaps.chance`): "majority" for accuracy and exact
match, the share of the test split's most common class (the best constant prediction, which a model
that learned nothing can always reach: uniform guessing, 1/C, is a lower bar that an imbalanced test split
clears without learning anything); "uniform" for balanced accuracy, 1/C (what every constant prediction
scores); none for the rest (F1, NLL, ECE, ...): no check. The class counts of the test split come from
the registered data set's `test_per_class` (DatasetCaps), or from the suite's `test_per_class` subset
(that many of every class), never from the heavy stored predictions; a data set not registered here,
or whose recorded test_examples disagree with those counts (other loader parameters), gets no check. The
reference beats chance when the lower end of the 95% t interval of its mean over its ok seeds lies above
the level; otherwise (an interval that reaches chance cannot tell the model from one that learned
nothing) every comparison of that (dataset, budget) gets the verdict "at chance": no test, no member of
the Holm family, no row in the verdict tables and no count in the wins; one line opens the verdict table
instead. Below 2 seeds there is no interval and no check (the verdicts are too few pairs anyway).

The real-data equivalent (`real_equivalents`): where a suite ran several real budgets, each synthesising
strategy's mean primary metric at its real budget is mapped onto the curve of the primary reference's means
over those budgets (and of each positive control's), linearly in log budget, with a percentile bootstrap CI
over seeds: "as good as 140 [95, 190] real examples per class at 100". Outside the curve's budgets it is
"below the smallest budget" or "above the largest", never extrapolated.

Differences are shown in points: one point is 0.01 of the metric (a percentage point for accuracy).
Everything here is a pure function of result records (bench.results.Result, or records as stored in
results/), of the registered capabilities and of the registered suite files' margins.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from bench.config import DEFAULT_EQUIVALENCE_MARGIN, load_suite
from bench.errors import BenchError
from bench.registry import DATASETS, METRICS, STRATEGIES, SUITES
from bench.results import Result, budget_segment, by_seed, by_strategy

ALPHA = 0.05  # two-sided significance level of every test and of the power computations
POWER = 0.80  # power at which the minimum detectable effect and the seeds needed are computed
POINT = 0.01  # one point of a metric, in the metric's units: a percentage point for accuracy
MAX_SEEDS = 100_000  # search limit of seeds_needed; beyond it the answer is "more than this"

# The verdicts (see the module docstring), in the order the wins table counts them.
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
IDENTICAL, TOO_FEW = "identical", "too few pairs"
AT_CHANCE = "at chance"  # no verdict: the primary reference does not beat chance (the chance check)
VERDICTS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, IDENTICAL, TOO_FEW, AT_CHANCE)


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
    p_tost: float | None = None  # TOST against ±margin (the larger one-sided p); None without a margin


def mean_ci(values: Sequence[float], level: float = 1 - ALPHA) -> tuple[float, float, float | None, float | None]:
    """(mean, sample std, CI low, CI high) of `values`, the CI of the mean by Student's t with n - 1 degrees
    of freedom; std 0 and no CI for a single value."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if len(a) < 2:
        return mean, 0.0, None, None
    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(a) - 1)) * std / math.sqrt(len(a))
    return mean, std, mean - half, mean + half


def paired_test(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA,
                margin: float | None = None) -> PairedTest:
    """Paired t-test, Wilcoxon signed-rank test and confidence interval of mean(a - b); with `margin`
    (metric units, > 0), the TOST p-value of equivalence within ±margin (`tost`).

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
    p_tost = None if margin is None else tost(d, margin)
    return PairedTest(n, mean, sd, mean - half, mean + half, p_t, p_w, p_tost)


def tost(d: Sequence[float], margin: float) -> float:
    """TOST (two one-sided tests) p-value that the mean of the paired differences `d` lies inside
    (-margin, +margin): the larger p of the one-sided t-tests of H0 mean <= -margin and of H0 mean >=
    +margin (scipy.stats.ttest_1samp, which on differences is the paired test). It is below alpha exactly
    when the (1 - 2 alpha) confidence interval of the mean lies inside the margin. SD 0: the mean is
    certain, so p is 0 inside the margin and 1 on or outside it (scipy's t would be infinite or NaN)."""
    d_ = np.asarray(d, dtype=float)
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    if len(d_) < 2:
        raise ValueError("TOST needs at least two pairs")
    if not np.any(d_ - d_[0]):  # all differences equal: SD 0
        return 0.0 if abs(float(d_[0])) < margin else 1.0
    with warnings.catch_warnings():  # nearly equal differences: scipy warns of precision loss
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        above = stats.ttest_1samp(d_, -margin, alternative="greater").pvalue  # H0: mean <= -margin
        below = stats.ttest_1samp(d_, margin, alternative="less").pvalue  # H0: mean >= +margin
    return float(max(above, below))


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


def verdict(p_adjusted: float | None, mean: float, higher_is_better: bool, p_tost: float | None = None,
            alpha: float = ALPHA) -> str:
    """better / worse (Holm-adjusted paired-t p < alpha, direction from the metric), else equivalent (TOST
    p < alpha), else inconclusive; too few pairs without a p-value. (`identical` is decided from the
    records, in compare_group.)"""
    if p_adjusted is None:
        return TOO_FEW
    if p_adjusted < alpha and mean != 0:
        return BETTER if (mean > 0) == higher_is_better else WORSE
    return EQUIVALENT if p_tost is not None and p_tost < alpha else INCONCLUSIVE


@dataclass(frozen=True)
class Chance:
    """The chance check of one (dataset, budget): the primary reference's mean of the primary metric over
    its ok seeds, with the 95% t interval, against the metric's chance level (all in metric units)."""

    reference: str
    metric: str
    mean: float
    ci_low: float
    ci_high: float
    seeds: int
    level: float
    basis: str  # how the level was found, in a few words

    @property
    def beaten(self) -> bool:
        """The interval lies above chance: the reference learned something."""
        return self.ci_low > self.level


def class_counts(r: Result) -> tuple[int, ...] | None:
    """Examples per class of the test split `r` was scored on: the suite's `test_per_class` subset (that
    many of every class), else the registered data set's official counts (DatasetCaps.test_per_class).
    None where the data set is not registered here or declares no counts, or where the cell's recorded
    test_examples disagree (other loader parameters: the declared counts are those of the defaults)."""
    name = (r.config.get("dataset") or {}).get("name", r.dataset)
    if name not in DATASETS:
        return None
    caps = DATASETS.caps(name)
    subset = r.config.get("test_per_class")
    counts = (int(subset),) * caps.classes if subset is not None else caps.test_per_class
    if not counts or (r.test_examples is not None and r.test_examples != sum(counts)):
        return None
    return tuple(counts)


def chance_level(results: Sequence[Result], metric: str) -> tuple[float, str] | None:
    """The chance level of `metric` (metric units) on the test split of `results` (one (dataset, budget),
    one test split), with how it was found; None where the metric declares no chance (MetricCaps.chance)
    or the test split's classes are not known here (`class_counts`)."""
    kind = METRICS.caps(metric).chance if metric in METRICS else None
    counts = next((c for r in results if (c := class_counts(r)) is not None), None)
    if kind is None or counts is None:
        return None
    if kind == "majority":
        return max(counts) / sum(counts), f"the majority class's share of the {sum(counts):,} test examples"
    if kind == "ranking":
        return 0.5, "0.5, a ranking no better than a coin"
    return 1 / len(counts), f"1/C, C = {len(counts)} classes"


def chance_check(results: Sequence[Result], metric: str, higher_is_better: bool) -> Chance | None:
    """The chance check of one (dataset, budget): the primary reference's ok seeds against the chance level
    of `metric`; None where there is no reference, no chance level, a lower-is-better metric or below 2
    seeds (no interval)."""
    ref = primary_reference(r.strategy for r in results)
    found = chance_level(results, metric) if higher_is_better else None
    if ref is None or found is None:
        return None
    values = [v for r in by_seed(r for r in results if r.strategy == ref).values()
              if r.ok and (v := r.value(metric)) is not None]
    mean, _, low, high = mean_ci(values) if values else (0.0, 0.0, None, None)
    if low is None or high is None:
        return None
    return Chance(ref, metric, mean, low, high, len(values), *found)


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
    # Holm-adjusted paired-t p over the family (one suite, version, preset); None where nothing was tested
    # (identical models, too few pairs)
    p_holm: float | None
    verdict: str  # one of VERDICTS
    mde: float | None  # minimum detectable effect, metric units; None for identical models and below 2 pairs
    margin: float = DEFAULT_EQUIVALENCE_MARGIN * POINT  # margin of practical equivalence (TOST), metric units
    round0: int = 0  # paired seeds in which both cells returned their round-0 model (`returned_round`)
    # TOST found it equivalent, but the (dataset, budget)'s positive control was not detected: shown inconclusive
    unpowered: bool = False
    # The primary reference does not beat chance on this (dataset, budget): verdict AT_CHANCE
    at_chance: Chance | None = None

    @property
    def family(self) -> tuple[str, int, str]:
        return (self.suite, self.version, self.preset)

    @property
    def group(self) -> tuple[str, int | str]:
        return (self.dataset, self.budget)


def _caps(strategy: str) -> Any | None:
    """The registered capabilities (bench.api.StrategyCaps) of `strategy`; None for one the registry does
    not know (an uninstalled plug-in, a variant under another id)."""
    return STRATEGIES.caps(strategy) if strategy in STRATEGIES else None


def reference_rank(strategy: str) -> int | None:
    """The place of `strategy` among the references (0 first), from its registered capabilities; None
    for a strategy that is no reference or that the registry does not know."""
    caps = _caps(strategy)
    return None if caps is None else caps.reference


def control_role(strategy: str) -> str | None:
    """"positive" (must be detected as better than the primary reference), "negative" (must not come out
    better) or None, from the registered capabilities."""
    caps = _caps(strategy)
    return None if caps is None else caps.control_role


def is_control(strategy: str) -> bool:
    """Whether `strategy` is registered with kind "control" (its verdicts form a block of their own)."""
    caps = _caps(strategy)
    return caps is not None and caps.kind == "control"


def references(strategies: Iterable[str]) -> tuple[str, ...]:
    """The references among `strategies`, in ascending rank (ties by name)."""
    ranked = {(rank, s) for s in strategies if (rank := reference_rank(s)) is not None}
    return tuple(s for _, s in sorted(ranked))


def primary_reference(strategies: Iterable[str]) -> str | None:
    """The reference of lowest rank among `strategies`; None where none is a reference."""
    refs = references(strategies)
    return refs[0] if refs else None


def _registered_caps(r: Result) -> Any | None:
    """The capabilities of the registered strategy a cell ran (config.strategy.name, else its id): a
    variant under another id, such as one per synthetic budget, has those of the strategy it runs."""
    return _caps(r.strategy_name or r.strategy)


def _setting(r: Result, ignore: Iterable[str]) -> tuple[dict[str, Any], Any]:
    """A cell's recorded strategy parameters, less `ignore`, and its `synthetic` section (generator,
    synthetic budget per class, mixing): what must agree for a method and its control to be a pair."""
    params = (r.config.get("strategy") or {}).get("params") or {}
    return {k: v for k, v in params.items() if k not in set(ignore)}, r.config.get("synthetic")


def control_pairs(results: Sequence[Result]) -> list[tuple[str, str]]:
    """(method id, control id) pairs of one (dataset, budget) that the references leave out: a cell of a
    strategy registered with kind "method", against a cell of a strategy whose capabilities declare it a
    reference and the control of that method (`control_of`) under another id (a variant, such as one per
    synthetic budget of a frontier preset), where both recorded the same strategy parameters less the
    method's `targeting_params` and the same `synthetic` section (so the same synthetic budget). A control
    under its registered name is a reference and compared with the method already."""
    first: dict[str, Result] = {}
    for r in results:
        first.setdefault(r.strategy, r)
    out = []
    for method, m in sorted(first.items()):
        caps = _registered_caps(m)
        if caps is None or caps.kind != "method":
            continue
        for control, c in sorted(first.items()):
            ccaps = _registered_caps(c)
            if (control == method or reference_rank(control) is not None or ccaps is None
                    or ccaps.reference is None or ccaps.control_of != (m.strategy_name or method)):
                continue
            if _setting(c, caps.targeting_params) == _setting(m, caps.targeting_params):
                out.append((method, control))
    return out


def loop_round(result: Result | Mapping[str, Any]) -> int | None:
    """strategy_log.returned_round of a loop strategy's cell (the loop's own record); None where the cell
    has none (a strategy without rounds)."""
    k = Result.of(result).strategy_log.get("returned_round")
    return k if isinstance(k, int) and not isinstance(k, bool) else None


def returned_round(result: Result | Mapping[str, Any]) -> int | None:
    """The round whose model a cell returned: a loop strategy's strategy_log.returned_round (0: its
    round-0 model, trained on the real data alone); 0 for a registered reference that adds no synthetic
    data and is no control (its model is that same real-data model); None for any other strategy."""
    r = Result.of(result)
    logged = loop_round(r)
    if logged is not None:
        return logged
    caps = _caps(r.strategy)
    trains_on_real_alone = (caps is not None and caps.reference is not None and not caps.synthesises
                            and caps.kind != "control" and caps.control_role is None)
    return 0 if trains_on_real_alone else None


def _primary(results: Sequence[Result]) -> tuple[str, bool | None]:
    """The suite's primary metric and its direction, read from the metric records themselves."""
    name = results[0].primary_metric
    for r in results:
        higher = r.higher_is_better(name)
        if higher is not None:
            return name, higher
    return name, None


def compare_group(records: Sequence[Result | Mapping[str, Any]], alpha: float = ALPHA, power: float = POWER,
                  margin: float = DEFAULT_EQUIVALENCE_MARGIN * POINT) -> list[Comparison]:
    """Unadjusted comparisons (p_holm = p_t, verdict from it) of one (suite, version, preset, dataset,
    budget): every strategy against every reference present, then each method against its control at the
    same setting (`control_pairs`), paired by seed, with TOST against ±`margin` (metric units), and
    `identical` where both models are the same. `compare` adjusts them."""
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
    # strategy -> seed -> the round whose model the cell returned, and the seeds whose loop logged it
    rounds = {s: {k: returned_round(r) for k, r in seeds.items()} for s, seeds in strategy_results.items()}
    loops = {s: {k for k, r in seeds.items() if loop_round(r) is not None} for s, seeds in strategy_results.items()}
    strategies = sorted(strategy_results)
    refs = references(strategies)
    chance = chance_check(results, metric, higher)
    at_chance = chance if chance is not None and not chance.beaten else None
    # Every strategy against every reference (two references once: the later one against the earlier),
    # then each method against its control at the same setting (`control_pairs`).
    pairs = [(strat, ref) for ref in refs for strat in strategies
             if strat != ref and not (strat in refs and refs.index(strat) < refs.index(ref))]
    pairs += control_pairs(results)
    out = []
    for strat, ref in pairs:
        seeds = tuple(sorted(set(values[strat]) & set(values[ref])))
        # A pair is a pair only if both cells trained on the same real examples (where recorded).
        seeds = tuple(k for k in seeds if None in (real[strat].get(k), real[ref].get(k))
                      or real[strat][k] == real[ref][k])
        if not seeds:
            continue
        t = paired_test([values[strat][k] for k in seeds], [values[ref][k] for k in seeds], alpha, margin)
        round0 = sum(rounds[strat][k] == 0 and rounds[ref][k] == 0 for k in seeds)
        # The same model twice: every difference exactly 0, or two loops that both kept their round-0
        # (real-data) model in every seed. Nothing to test: no p, no CI, no MDE.
        same = t.n >= 2 and ((t.mean == 0 and t.sd == 0)
                             or (round0 == t.n and set(seeds) <= loops[strat] & loops[ref]))
        if at_chance is not None:  # the reference learned nothing: no test
            v, p, m = AT_CHANCE, None, None
        elif same:
            v, p, m = IDENTICAL, None, None
        else:
            v, p, m = verdict(t.p_t, t.mean, higher, t.p_tost, alpha), t.p_t, mde(t.sd, t.n, alpha, power)
        out.append(Comparison(first.suite, first.version, first.preset, first.dataset, first.budget, metric,
                              higher, strat, ref, seeds, t, p, v, m, margin, round0, at_chance=at_chance))
    return out


def group_order(key: tuple) -> tuple:
    """Sort key of a group key such as (suite, version, preset, dataset, budget) whose budgets may mix
    numbers (n per class) and budget forms ("all", "10%"): numbers first, in order, then forms."""
    return tuple((isinstance(x, str), x) for x in key)


def equivalence_margin(suite: str, preset: str) -> tuple[float, str]:
    """The margin of practical equivalence of `suite` at `preset`, in points, and in a few words where it
    comes from: the registered suite file's `equivalence_margin` (bench.config), else
    DEFAULT_EQUIVALENCE_MARGIN: where the file declares none, where the suite is not registered here (the
    results of an external suite) or where its file does not load at that preset. The margin is read from
    the suite file, not from the results: it is no part of a cell's config (or hash)."""
    try:
        if suite not in SUITES:
            return DEFAULT_EQUIVALENCE_MARGIN, f"the default: suite {suite} is not registered here"
        config = load_suite(suite, preset)
    except BenchError as exc:
        return DEFAULT_EQUIVALENCE_MARGIN, f"the default: suite {suite} [{preset}] does not load here ({exc})"
    if "equivalence_margin" not in config.model_fields_set:
        return config.equivalence_margin, f"the default: suite {suite} declares no equivalence_margin"
    return config.equivalence_margin, f"the equivalence_margin of suite {suite}"


def compare(groups: Mapping[tuple, Sequence[Result | Mapping[str, Any]]], alpha: float = ALPHA,
            power: float = POWER) -> dict[tuple[str, int, str], list[Comparison]]:
    """Verdict tables: family (suite, version, preset) -> comparisons over all its (dataset, budget)
    groups, with Holm-adjusted paired-t p-values across the family (identical models and comparisons with
    too few pairs are no test and no member of it), TOST against each suite's margin
    (`equivalence_margin`), verdicts from them, and the positive control's check (`check_power`).
    `groups` maps any key to the records of one (suite, version, preset, dataset, budget)."""
    families: dict[tuple[str, int, str], list[Comparison]] = defaultdict(list)
    margins: dict[tuple[str, str], float] = {}  # (suite, preset) -> margin, metric units
    for _, records in sorted(groups.items(), key=lambda kv: group_order(kv[0])):
        if not records:
            continue
        first = Result.of(records[0])
        key = (first.suite, first.preset)
        if key not in margins:
            margins[key] = equivalence_margin(*key)[0] * POINT
        for comp in compare_group(records, alpha, power, margins[key]):
            families[comp.family].append(comp)
    out = {}
    for fam, comps in sorted(families.items()):
        adjusted = holm([c.p_holm for c in comps])
        tested = [c if c.p_holm is None else
                  replace(c, p_holm=p, verdict=verdict(p, c.test.mean, c.higher_is_better, c.test.p_tost, alpha))
                  for c, p in zip(comps, adjusted)]
        out[fam] = check_power(tested)
    return out


def _positive_controls(comparisons: Sequence[Comparison]) -> dict[tuple[str, int | str], list[Comparison]]:
    """Per (dataset, budget): the comparisons of the positive controls with the primary reference."""
    primary = primary_reference(c.reference for c in comparisons)
    out: dict[tuple[str, int | str], list[Comparison]] = defaultdict(list)
    for c in comparisons:
        if c.reference == primary and control_role(c.strategy) == "positive":
            out[c.group].append(c)
    return out


def check_power(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons of one family, with the positive control's verdict applied: in a (dataset, budget)
    where a positive control was compared with the primary reference and none came out better, the suite
    cannot see even an effect of more real data, so an `equivalent` there proves nothing and becomes
    `inconclusive` (unpowered=True). Where no positive control ran, the verdicts stand (and the power line
    says that nothing checked them)."""
    blind = {g for g, cs in _positive_controls(comparisons).items() if all(c.verdict != BETTER for c in cs)}
    return [replace(c, verdict=INCONCLUSIVE, unpowered=True) if c.group in blind and c.verdict == EQUIVALENT else c
            for c in comparisons]


def delta_text(c: Comparison) -> str:
    """Δ in points with its 95% CI, "+1.23 [-0.40, +2.86]"; no CI for identical models or one pair."""
    t = c.test
    ci = f" [{t.ci_low / POINT:+.2f}, {t.ci_high / POINT:+.2f}]" if t.ci_low is not None and c.verdict != IDENTICAL else ""
    return f"{t.mean / POINT:+.2f}{ci}"


def verdict_text(c: Comparison) -> str:
    """The verdict as the tables show it: identical models with the seeds that returned round 0, and a
    negative control that comes out better flagged."""
    if c.verdict == AT_CHANCE:
        return "no verdict: at chance"
    if c.verdict == IDENTICAL:
        n = len(c.seeds)
        return (f"identical models (round 0 returned in {c.round0} of {n} seeds)" if c.round0 == n
                else f"identical (all {n} differences exactly 0)")
    if c.verdict == BETTER and control_role(c.strategy) == "negative":
        return "better ⚠ NEGATIVE CONTROL"
    return c.verdict


def chance_sentence(chance: Chance, where: str = "") -> str:
    """The line that replaces the verdicts of a (dataset, budget) whose primary reference is at chance."""
    return (f"At chance{where}: the task model has not learned the task ({chance.reference} {chance.metric} mean "
            f"{chance.mean:.4f}, 95% CI [{chance.ci_low:.4f}, {chance.ci_high:.4f}] over {chance.seeds} seeds, "
            f"chance {chance.level:.4f}: {chance.basis}), so no verdict is given there.")


def control_sentences(comparisons: Sequence[Comparison]) -> list[str]:
    """The lines that open a family's verdict table: per (dataset, budget) whose primary reference is at
    chance, the chance line (its verdicts are void); per other (dataset, budget) the power check (the
    positive control against the primary reference: detected, not detected, or not run), then an alarm
    for each negative control that comes out better than a reference."""
    primary = primary_reference(c.reference for c in comparisons)
    every = list(dict.fromkeys(c.group for c in comparisons))
    chance = {c.group: c.at_chance for c in comparisons if c.at_chance is not None}
    lines = [chance_sentence(ch, f" ({g[0]} {budget_segment(g[1])})" if len(every) > 1 else "")
             for g, ch in chance.items()]
    groups = [g for g in every if g not in chance]
    positives = _positive_controls(comparisons)
    for g in groups if positives else groups[:1]:  # without any positive control, one line says so
        where = f" ({g[0]} {budget_segment(g[1])})" if positives and len(every) > 1 else ""
        cs = positives.get(g)
        if not cs:
            lines.append(f"Power check{where}: no positive control ran (a strategy registered with control_role "
                         f"\"positive\", compared with {primary}), so nothing shows that this suite can see an effect "
                         "at all.")
            continue
        c = next((c for c in cs if c.verdict == BETTER), cs[0])
        effect = f"the positive control {c.strategy} vs {c.reference}: {delta_text(c)} points (95% CI)"
        if c.verdict == BETTER:
            lines.append(f"Power check{where}: {effect}, detected (better): this suite can see an effect of real data.")
        else:
            demoted = sum(x.unpowered for x in comparisons if x.group == g)
            lines.append(f"Power check{where}: {effect}, not detected ({verdict_text(c)}): this suite cannot see even "
                         "the effect of more real data, so its verdicts are inconclusive by design "
                         f"({demoted} equivalent verdict{'' if demoted == 1 else 's'} shown as inconclusive).")
    for c in comparisons:
        if c.verdict == BETTER and control_role(c.strategy) == "negative":
            where = f" on {c.dataset} {budget_segment(c.budget)}" if len(groups) > 1 else ""
            lines.append(f"⚠ **NEGATIVE CONTROL COMES OUT BETTER: {c.strategy} vs {c.reference}{where}, "
                         f"{delta_text(c)} points.** A control that must not help does: suspect a leak (of test or "
                         "pool labels), a bug or a broken reference before trusting any verdict of this suite.")
    return lines


@dataclass(frozen=True)
class Wins:
    """SDGym-style counts for one strategy: of its (suite, preset, dataset, budget) comparisons against
    `reference`, how many have each verdict."""

    strategy: str
    reference: str
    comparisons: int
    better: int
    worse: int
    equivalent: int
    inconclusive: int  # includes comparisons with too few pairs
    identical: int


def wins(families: Mapping[Any, Sequence[Comparison]], reference: str | None = None) -> list[Wins]:
    """Counts per strategy over every comparison against `reference` (default: the primary reference of
    `families`, from `compare`), sorted by better - worse, then better, then name; controls last. Comparisons
    at chance are no verdict and not counted."""
    if reference is None:
        reference = primary_reference(c.reference for comps in families.values() for c in comps)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for comps in families.values():
        for c in comps:
            if c.reference == reference and c.verdict != AT_CHANCE:  # at chance: no verdict to count
                counts[c.strategy][c.verdict] += 1
    rows = [Wins(s, reference, sum(k.values()), k[BETTER], k[WORSE], k[EQUIVALENT], k[INCONCLUSIVE] + k[TOO_FEW],
                 k[IDENTICAL]) for s, k in counts.items()]
    return sorted(rows, key=lambda w: (is_control(w.strategy), -(w.better - w.worse), -w.better, w.strategy))


def pooled_sd(comparisons: Iterable[Comparison]) -> tuple[float | None, int]:
    """SD of the paired differences pooled over comparisons (variances weighted by their degrees of
    freedom), and the most common number of pairs (ties: the larger). (None, n) below 2 pairs. Identical
    models are left out: their differences (often exactly 0) say nothing of the noise between two models;
    so are comparisons at chance (models that learned nothing)."""
    comps = [c for c in comparisons if c.verdict not in (IDENTICAL, AT_CHANCE)]
    num = sum((c.test.n - 1) * c.test.sd ** 2 for c in comps if c.test.sd is not None)
    df = sum(c.test.n - 1 for c in comps if c.test.sd is not None)
    ns = Counter(c.test.n for c in comps)
    n = max(ns, key=lambda k: (ns[k], k)) if ns else 0
    return (math.sqrt(num / df) if df else None), n


def power_sentence(comparisons: Sequence[Comparison], effect_points: float | None = None,
                   alpha: float = ALPHA, power: float = POWER) -> str:
    """One line for a family: the MDE at its usual number of seeds and the seeds a given effect needs
    (default: the suite's equivalence margin, the smallest difference it counts as practical), both at
    the pooled SD of the paired differences, e.g. "With 3 seeds a difference under 2.1 points cannot be
    seen ...; detecting 1 point needs 14 seeds"."""
    if comparisons and all(c.verdict == AT_CHANCE for c in comparisons):
        return "No verdicts to size the seeds for: the reference is at chance everywhere."
    sd, n = pooled_sd(comparisons)
    if sd is None:
        return "Too few paired seeds (below 2) to estimate the spread of the differences."
    m = mde(sd, n, alpha, power)
    if effect_points is None:
        effect_points = comparisons[0].margin / POINT
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


# The real-data equivalent: how much real data a synthesising strategy is worth.
BOOTSTRAP_RESAMPLES = 2_000  # resamples of the seeds behind each equivalent's CI
BOOTSTRAP_SEED = 0  # fixed: the same results give the same interval
BELOW, ABOVE = 0.0, math.inf  # an equivalent below the curve's smallest budget / above its largest


def real_equivalent(budgets: Sequence[float], curve: Sequence[float], value: float,
                    higher_is_better: bool = True) -> float:
    """The real examples per class at which `curve` (the mean primary metric at each of `budgets`,
    ascending) first reaches `value`, interpolated linearly in log budget between the two budgets around
    it (accuracy grows about linearly in the log of the data, and the budgets are spaced by factors).
    BELOW (0) where the curve at its smallest budget is already better than `value`, ABOVE (inf) where it
    never reaches it: no extrapolation beyond the budgets that ran. "Reaches" follows the metric's
    direction; on a curve that is not monotone, the first crossing counts (the least real data that does
    as well)."""
    sign = 1.0 if higher_is_better else -1.0
    target = sign * value
    ys = [sign * y for y in curve]
    for i, y in enumerate(ys):
        if y >= target:
            if i == 0:
                return float(budgets[0]) if y == target else BELOW
            t = (target - ys[i - 1]) / (y - ys[i - 1])  # ys[i-1] < target <= y
            lo, hi = math.log(budgets[i - 1]), math.log(budgets[i])
            return math.exp(lo + t * (hi - lo))
    return ABOVE


@dataclass(frozen=True)
class RealEquivalent:
    """A synthesising strategy at one real budget, expressed in real data: the real examples per class at
    which `curve` (a strategy trained on real data, over the suite's real budgets) has the same mean primary
    metric, with a percentile bootstrap CI over seeds (`real_equivalents`)."""

    suite: str
    version: int
    preset: str
    dataset: str
    metric: str
    higher_is_better: bool
    strategy: str
    budget: int  # the strategy's real examples per class
    curve: str  # the strategy whose means over `budgets` map a mean to real examples per class
    budgets: tuple[int, ...]  # the curve's real budgets per class, ascending
    seeds: tuple[int, ...]  # the seeds the strategy and every point of the curve have with status ok
    mean: float  # the strategy's mean primary metric over `seeds`, metric units
    equivalent: float  # real examples per class; BELOW or ABOVE outside the curve's budgets
    ci_low: float | None  # 95% percentile bootstrap interval of `equivalent`; None below 2 seeds
    ci_high: float | None

    @property
    def family(self) -> tuple[str, int, str]:
        return (self.suite, self.version, self.preset)


def real_equivalents(records: Iterable[Result | Mapping[str, Any]], resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> list[RealEquivalent]:
    """The real-data equivalent of every synthesising strategy (registered `synthesises`, its variants
    included) at each real budget of a (suite, version, preset, dataset) with several numeric real budgets:
    on the curve of the primary reference and on that of each positive control present, each over the
    budgets where it has results (at least 2). The point estimate maps the strategy's mean onto the curve
    of means (`real_equivalent`); the CI resamples the seeds with replacement `resamples` times (one
    generator seeded with `seed` per row, so a row does not depend on the others), recomputes the
    strategy's mean and the whole curve from the same resampled seeds (seed k's cells share its data and
    random numbers) and takes the 2.5% and 97.5% points of the equivalents (order statistics, so BELOW
    and ABOVE stay what they are). Only seeds that the strategy and every point of the curve have ok."""
    places: dict[tuple, list[Result]] = defaultdict(list)  # (suite, version, preset, dataset) -> results
    for r in map(Result.of, records):
        places[(*r.family, r.dataset)].append(r)
    out = []
    for (suite, version, preset, dataset), results in sorted(places.items()):
        metric, higher = _primary(results)
        if higher is None:
            continue
        values: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)  # (id, budget) -> seed -> value
        for r in results:
            if r.ok and isinstance(r.budget, int) and (v := r.value(metric)) is not None:
                values[(r.strategy, r.budget)][r.seed] = v
        if len({b for _, b in values}) < 2:
            continue
        cells = {r.strategy: r for r in results}
        primary = primary_reference(cells)
        curves = [primary] if primary else []
        curves += sorted(s for s in cells if control_role(s) == "positive")
        for curve in curves:
            budgets = sorted(b for s, b in values if s == curve)
            if len(budgets) < 2:
                continue
            for (strategy, budget), mine in sorted(values.items()):
                caps = _registered_caps(cells[strategy])
                if strategy == curve or caps is None or not caps.synthesises:
                    continue
                seeds = sorted(set(mine).intersection(*(values[(curve, b)] for b in budgets)))
                if not seeds:
                    continue
                a = np.array([mine[k] for k in seeds])  # the strategy, by seed
                c = np.array([[values[(curve, b)][k] for k in seeds] for b in budgets])  # budget x seed
                point = real_equivalent(budgets, c.mean(axis=1), float(a.mean()), higher)
                low = high = None
                if len(seeds) >= 2:
                    idx = np.random.default_rng(seed).integers(0, len(seeds), size=(resamples, len(seeds)))
                    means = a[idx].mean(axis=1)  # (resamples,)
                    curve_means = c[:, idx].mean(axis=2)  # (budgets, resamples)
                    draws = [real_equivalent(budgets, curve_means[:, i], float(means[i]), higher)
                             for i in range(resamples)]
                    ends = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2], method="inverted_cdf")
                    low, high = float(ends[0]), float(ends[1])
                out.append(RealEquivalent(suite, version, preset, dataset, metric, higher, strategy, budget, curve,
                                          tuple(budgets), tuple(seeds), float(a.mean()), point, low, high))
    return out


def real_per_class_text(x: float, budgets: Sequence[int], bound: bool = False) -> str:
    """An equivalent in real examples per class, "137"; outside the curve's budgets "below the smallest
    budget (50)" / "above the largest (200)", or as an interval's end (`bound`) "below 50" / "above 200"."""
    if x == BELOW:
        return f"below {budgets[0]}" if bound else f"below the smallest budget ({budgets[0]})"
    if x == ABOVE:
        return f"above {budgets[-1]}" if bound else f"above the largest ({budgets[-1]})"
    return f"{x:.0f}"


def equivalent_text(e: RealEquivalent) -> str:
    """The equivalent with its 95% CI: "137 [95, 190]", "below the smallest budget (50) [below 50, 61]"."""
    ci = ("" if e.ci_low is None or e.ci_high is None else
          f" [{real_per_class_text(e.ci_low, e.budgets, True)}, {real_per_class_text(e.ci_high, e.budgets, True)}]")
    return real_per_class_text(e.equivalent, e.budgets) + ci


def ratio_text(e: RealEquivalent) -> str:
    """The equivalent over the strategy's own real budget: "1.4×" (as good as 1.4 times its real data: the
    same metric with 1 - 1/1.4 = 29% less real data); "< 0.5×" / "> 2×" outside the curve's budgets."""
    if e.equivalent == BELOW:
        return f"< {e.budgets[0] / e.budget:.2g}×"
    if e.equivalent == ABOVE:
        return f"> {e.budgets[-1] / e.budget:.2g}×"
    return f"{e.equivalent / e.budget:.2g}×"
