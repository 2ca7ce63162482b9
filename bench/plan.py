"""Seeds and CPU-hours for an effect: how many seeds a suite needs to detect an effect of POINTS in its key
comparisons, and what they cost, from the variance and the cost of the cells already run (`bench plan`,
`bench run --until-mde`, the leaderboard's plan line).

The key comparisons are the suite's method (the strategies of kind `method`) against each reference
(real_only, random_synthetic, loop_real_only: `StrategyCaps.reference`). For each, the SD of the paired
differences of the primary metric over the seeds both have (bench.stats.paired_test) gives the seeds at
which a two-sided paired t-test at 0.05 detects POINTS with 80% power (bench.stats.seeds_needed). The
plan is the largest of these. The cost of a seed is the sum over the suite's strategies of the mean CPU
time of their cells (Result.cost_hours: the shared generator fit charged alike to every strategy that
samples it); a strategy with no cell yet is costed as the mean of the loop strategies that ran (the
controls are that same loop). The cells read are the suite's current version where it has any, else its
newest version with results.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench import stats
from bench.errors import BenchError
from bench.registry import STRATEGIES
from bench.results import Result, by_group, by_seed, by_strategy, load_results


def key_strategies(suite) -> tuple[list[str], list[str]]:
    """The strategy ids of the key comparisons: the methods (kind `method`, in suite order) and the
    references (`StrategyCaps.reference` set, in the order of their reference rank, then id)."""
    names = {s.key: s.name for s in suite.strategies if s.name in STRATEGIES.names()}
    methods = [i for i, n in names.items() if STRATEGIES.caps(n).kind == "method"]
    refs = sorted((STRATEGIES.caps(n).reference, i) for i, n in names.items() if STRATEGIES.caps(n).reference is not None)
    return methods, [i for _, i in refs]


def make_plan(results: Path, suite, effect_points: float) -> dict[str, Any]:
    """The plan from the suite's cells under the results folder `results` (`plan_cells`)."""
    preset = suite.preset
    found = [r for r in load_results(results / suite.name, on_invalid=lambda path, reason: None)
             if r.suite == suite.name and r.preset == preset]
    if not found:
        raise BenchError(f"no results of suite {suite.name!r} (preset {preset}) under {results}: run some seeds "
                         f"first (`bench run --suite {suite.name} --seeds 0,1,2`)")
    return plan_cells(found, suite, effect_points)


def plan_cells(found: Sequence[Result], suite, effect_points: float) -> dict[str, Any]:
    """The plan as plain data: the version read, each key comparison's SD (points), pairs and seeds
    needed, the CPU seconds per seed by strategy id (and which are estimates), from `found`, cells of the
    suite's name and preset."""
    versions = sorted({r.version for r in found})
    version = suite.version if suite.version in versions else versions[-1]
    cells = [r for r in found if r.version == version]
    ids = [s.key for s in suite.strategies]
    names = {s.key: s.name for s in suite.strategies}
    kinds = {i: STRATEGIES.caps(n).kind for i, n in names.items() if n in STRATEGIES.names()}
    methods, refs = key_strategies(suite)
    # The loop's strategies: the method, its controls and the strategies declared the control of another.
    loop = {i for i, n in names.items() if n in STRATEGIES.names()
            and (kinds[i] in ("method", "control") or STRATEGIES.caps(n).control_of is not None)}

    comparisons = []
    # the cells are of one suite, version and preset: group them by (data set, budget)
    for (*_, dataset, budget), group in by_group(cells).items():
        metric = group[0].primary_metric
        values = {s: {k: r.value(metric) for k, r in by_seed(rs).items() if r.ok and r.value(metric) is not None}
                  for s, rs in by_strategy(group).items()}
        for method in methods:
            for ref in refs:
                seeds = sorted(set(values.get(method, {})) & set(values.get(ref, {})))
                if len(seeds) < 2:
                    continue
                test = stats.paired_test([values[method][k] for k in seeds], [values[ref][k] for k in seeds])
                sd = None if test.sd is None else test.sd / stats.POINT
                identical = test.sd == 0 and test.mean == 0  # the same model in every seed: nothing to size
                comparisons.append({"dataset": dataset, "budget": budget, "strategy": method, "reference": ref,
                                    "pairs": len(seeds), "sd": sd, "identical": identical,
                                    "mde": None if identical else stats.mde(sd, len(seeds)),
                                    "seeds": None if identical else stats.seeds_needed(effect_points, sd)})
    cost, estimated = {}, []
    spent = {s: [h * 3600 for r in rs if r.ok and (h := r.cost_hours("cpu_hours")) is not None]
             for s, rs in by_strategy(cells).items()}
    loops = [np.mean(v) for s, v in spent.items() if v and s in loop]
    for sid in ids:
        if spent.get(sid):
            cost[sid] = float(np.mean(spent[sid]))
        elif loops and sid in loop:
            cost[sid], _ = float(np.mean(loops)), estimated.append(sid)
        else:
            cost[sid] = None
    datasets_budgets = max(1, len(suite.datasets) * len(suite.budgets))
    return {"suite": suite.name, "version": version, "current": suite.version, "preset": suite.preset,
            "comparisons": comparisons, "cost": cost, "estimated": estimated, "groups": datasets_budgets}


def seed_seconds(plan: dict[str, Any]) -> float:
    """CPU seconds of one seed of the whole suite (every strategy, data set and budget) where known."""
    return sum(v for v in plan["cost"].values() if v is not None) * plan["groups"]


def seeds_for_all(plan: dict[str, Any]) -> int | None:
    """Seeds at which every key comparison that is not identical detects the plan's effect; None where one
    is out of reach (more than stats.MAX_SEEDS), 0 where there is nothing to size."""
    needed = [c["seeds"] for c in plan["comparisons"] if not c["identical"]]
    return None if any(n is None for n in needed) else max(needed, default=0)


def worst_mde(plan: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """The largest MDE (points) over the key comparisons that are not identical, with its comparison;
    (0.0, None) where none is."""
    found = [(c["mde"], c) for c in plan["comparisons"] if not c["identical"] and c["mde"] is not None]
    return max(found, key=lambda mc: mc[0], default=(0.0, None))


def worst_key_comparison(comparisons: list[dict], keys: set[tuple]) -> tuple[float, tuple]:
    """The largest MDE (points) over the key comparisons `keys` ((dataset, budget, strategy, reference)) and
    its key, from a plan's comparisons: an identical comparison has nothing to detect (MDE 0), one
    missing from the plan (under 2 paired ok seeds) or without an MDE counts as infinite. (0.0, ()) when
    `keys` is empty."""
    mdes = {(c["dataset"], c["budget"], c["strategy"], c["reference"]):
            0.0 if c["identical"] else math.inf if c["mde"] is None else c["mde"] for c in comparisons}
    return max(((mdes.get(k, math.inf), k) for k in sorted(keys, key=str)), default=(0.0, ()))
