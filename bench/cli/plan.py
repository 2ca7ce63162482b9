"""`bench plan --suite S --effect POINTS`: how many seeds, and how many CPU-hours, a suite needs to detect
an effect of POINTS in its key comparisons, from the variance and the cost of the cells already run.

The key comparisons are the suite's method (the strategies of kind `method`) against each reference
(real_only, random_synthetic, loop_real_only: `StrategyCaps.reference`). For each, the SD of the paired
differences of the primary metric over the seeds both have (bench.stats.paired_test) gives the seeds at
which a two-sided paired t-test at 0.05 detects POINTS with 80% power (bench.stats.seeds_needed). The
plan is the largest of these. The cost of a seed is the sum over the suite's strategies of the mean CPU
seconds of their cells (compute.cpu_seconds: the cell process's user + system time); a strategy with no
cell yet is costed as the mean of the loop strategies that ran (the controls are that same loop), and
the output says so. The cells read are the suite's current version where it has any, else its newest
version with results.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import DEFAULT_RESULTS, positive
from bench.errors import BenchError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="seeds and CPU-hours a suite needs to detect an effect, from the cells run so far")
    p.add_argument("--suite", required=True, help="a registered suite name or a path to a suite .yaml")
    p.add_argument("--effect", type=positive("--effect", "points"), default=2.0, metavar="POINTS",
                   help="the effect to detect, in points (0.01 of the primary metric; default 2)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    p.add_argument("--preset", default=None, help="the suite's preset (default: cpu)")


def cmd(args: argparse.Namespace) -> int:
    from bench.config import DEFAULT_PRESET, load_suite

    suite = load_suite(args.suite, args.preset or DEFAULT_PRESET)
    if not args.results.is_dir():
        raise BenchError(f"results folder {args.results} does not exist")
    plan = make_plan(args.results, suite, args.effect)
    print(render(plan, args.effect))
    return 0


def make_plan(results: Path, suite, effect_points: float) -> dict:
    """The plan as plain data: the version read, each key comparison's SD (points), pairs and seeds
    needed, the CPU seconds per seed by strategy id (and which are estimates)."""
    import numpy as np

    from bench import stats
    from bench.registry import STRATEGIES
    from bench.results import by_group, by_seed, by_strategy, load_results

    preset = suite.preset
    found = [r for r in load_results(results / suite.name, on_invalid=lambda path, reason: None)
             if r.suite == suite.name and r.preset == preset]
    if not found:
        raise BenchError(f"no results of suite {suite.name!r} (preset {preset}) under {results}: run some seeds "
                         f"first (`bench run --suite {suite.name} --seeds 0,1,2`)")
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
    spent = {s: [c for r in rs if r.ok and (c := r.compute_number("cpu_seconds")) is not None]
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
    return {"suite": suite.name, "version": version, "current": suite.version, "preset": preset,
            "comparisons": comparisons, "cost": cost, "estimated": estimated, "groups": datasets_budgets}


def key_strategies(suite) -> tuple[list[str], list[str]]:
    """The strategy ids of the key comparisons: the methods (kind `method`, in suite order) and the
    references (`StrategyCaps.reference` set, in the order of their reference rank, then id)."""
    from bench.registry import STRATEGIES

    names = {s.key: s.name for s in suite.strategies if s.name in STRATEGIES.names()}
    methods = [i for i, n in names.items() if STRATEGIES.caps(n).kind == "method"]
    refs = sorted((STRATEGIES.caps(n).reference, i) for i, n in names.items() if STRATEGIES.caps(n).reference is not None)
    return methods, [i for _, i in refs]


def render(plan: dict, effect: float) -> str:
    lines = [f"{plan['suite']} v{plan['version']} ({plan['preset']})"
             + ("" if plan["version"] == plan["current"] else
                f": variance and cost from v{plan['version']}, the newest version with results (the suite is v{plan['current']})")]
    if not plan["comparisons"]:
        lines.append("no key comparison has 2 paired seeds yet: run at least 2 seeds of the method and a reference")
    else:
        lines.append(f"{'data/budget':<22}{'comparison':<42}{'pairs':>6}{'SD':>8}{'MDE':>8}{'seeds for ' + format(effect, 'g'):>14}")
        for c in plan["comparisons"]:
            sd = "-" if c["sd"] is None else f"{c['sd']:.2f}"
            mde = "-" if c["mde"] is None else f"{c['mde']:.2f}"
            seeds = "identical" if c["identical"] else "> 100000" if c["seeds"] is None else str(c["seeds"])
            lines.append(f"{c['dataset'] + ' ' + str(c['budget']):<22}{c['strategy'] + ' vs ' + c['reference']:<42}"
                         f"{c['pairs']:>6}{sd:>8}{mde:>8}{seeds:>14}")
    per_seed = [v for v in plan["cost"].values() if v is not None]
    unknown = [s for s, v in plan["cost"].items() if v is None]
    seed_cost = sum(per_seed) * plan["groups"]
    lines.append(f"CPU seconds per seed, all strategies: {seed_cost:,.0f}"
                 + (f" (estimated from the loop strategies' cells: {', '.join(plan['estimated'])})" if plan["estimated"] else "")
                 + (f"; no cost known for {', '.join(unknown)}" if unknown else ""))
    needed = [c["seeds"] for c in plan["comparisons"] if not c["identical"]]
    if any(c["identical"] for c in plan["comparisons"]):
        lines.append("identical: the two returned the same model in every seed (no synthetic data kept): no variance "
                     "to size the seeds from, left out of the plan")
    if needed:
        if any(n is None for n in needed):
            lines.append(f"an effect of {effect:g} points is out of reach (more than 100,000 seeds) at this SD")
        else:
            n = max(needed)
            lines.append(f"plan: {n} seeds to detect {effect:g} points in every key comparison (80% power, two-sided "
                         f"0.05): about {n * seed_cost / 3600:.1f} CPU-hours")
    return "\n".join(lines)
