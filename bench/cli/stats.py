"""`bench stats`: paired verdicts by seed (better, worse, equivalent, inconclusive, identical; bench.stats),
the power check of the positive control, and the seeds needed to detect an effect."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import DEFAULT_RESULTS, positive
from bench.errors import BenchError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    st = subparsers.add_parser("stats", help="paired verdicts by seed (better, worse, equivalent, inconclusive, "
                               "identical), and the seeds needed to detect an effect")
    st.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    st.add_argument("--suite", help="only this suite (default: every suite with results)")
    st.add_argument("--effect", type=positive("--effect", "points"), metavar="POINTS",
                    help="effect to size the seeds for, in points (0.01 of the metric; default: the suite's equivalence margin)")


def cmd(args: argparse.Namespace) -> int:
    from bench import leaderboard
    from bench import stats as paired

    if not args.results.is_dir():
        raise BenchError(f"results folder {args.results} does not exist")
    groups = leaderboard.collect(args.results)
    if not groups:
        raise BenchError(f"no results under {args.results}: run `bench run --suite NAME`")
    if args.suite is not None:
        suites = sorted({k[0] for k in groups})
        groups = {k: v for k, v in groups.items() if k[0] == args.suite}
        if not groups:
            raise BenchError(f"no results for suite {args.suite!r} under {args.results} (there are: {', '.join(suites)})")
    families = paired.compare(groups)
    if not families:
        raise BenchError(f"no paired seeds under {args.results}: a suite needs a reference strategy "
                         f"({_references()}) and another strategy with the same seeds")
    for family, comparisons in families.items():
        print(leaderboard.verdict_table(family, comparisons, args.effect).lstrip("\n"))
    print(leaderboard.wins_table(families).lstrip("\n"), end="")
    return 0


def _references() -> str:
    """The strategies whose capabilities declare them a reference of the verdicts, in their order."""
    from bench.registry import STRATEGIES

    refs = sorted((STRATEGIES.caps(n).reference, n) for n in STRATEGIES.names() if STRATEGIES.caps(n).reference is not None)
    return " or ".join(name for _, name in refs) or "none is registered"
