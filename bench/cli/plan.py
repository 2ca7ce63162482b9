"""`bench plan --suite S --effect POINTS`: how many seeds, and how many CPU-hours, a suite needs to detect
an effect of POINTS in its key comparisons, from the variance and the cost of the cells already run
(bench.plan computes it; this module parses and prints).
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
    from bench.plan import make_plan

    suite = load_suite(args.suite, args.preset or DEFAULT_PRESET)
    if not args.results.is_dir():
        raise BenchError(f"results folder {args.results} does not exist")
    plan = make_plan(args.results, suite, args.effect)
    print(render(plan, args.effect))
    return 0


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
    from bench.plan import seed_seconds, seeds_for_all

    unknown = [s for s, v in plan["cost"].items() if v is None]
    seed_cost = seed_seconds(plan)
    lines.append(f"CPU seconds per seed, all strategies: {seed_cost:,.0f}"
                 + (f" (estimated from the loop strategies' cells: {', '.join(plan['estimated'])})" if plan["estimated"] else "")
                 + (f"; no cost known for {', '.join(unknown)}" if unknown else ""))
    if any(c["identical"] for c in plan["comparisons"]):
        lines.append("identical: the two returned the same model in every seed (no synthetic data kept): no variance "
                     "to size the seeds from, left out of the plan")
    if any(not c["identical"] for c in plan["comparisons"]):
        n = seeds_for_all(plan)
        if n is None:
            lines.append(f"an effect of {effect:g} points is out of reach (more than 100,000 seeds) at this SD")
        else:
            lines.append(f"plan: {n} seeds to detect {effect:g} points in every key comparison (80% power, two-sided "
                         f"0.05): about {n * seed_cost / 3600:.1f} CPU-hours")
    return "\n".join(lines)
