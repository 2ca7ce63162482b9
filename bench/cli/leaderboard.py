"""`bench leaderboard`: regenerate LEADERBOARD.md from the results, or `--check` that it is current and
that every result comes from a clean tree at a commit of this repository."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.arguments import DEFAULT_RESULTS
from bench.errors import BenchError

DEFAULT_LEADERBOARD = Path("LEADERBOARD.md")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    lb = subparsers.add_parser("leaderboard", help="regenerate LEADERBOARD.md from the results")
    lb.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    lb.add_argument("--output", type=Path, default=DEFAULT_LEADERBOARD)
    lb.add_argument("--check", action="store_true", help="fail (exit 1) if the file is not what results/ gives, or "
                    "if a result does not come from a clean tree at a commit of this repository")


def cmd(args: argparse.Namespace) -> int:
    from bench import leaderboard

    if not args.results.is_dir():
        problem = "is not a folder" if args.results.exists() else "does not exist"
        raise BenchError(f"results folder {args.results} {problem}")
    if args.output.is_dir():
        raise BenchError(f"--output {args.output} is a folder: give the file to write, "
                         f"e.g. {args.output / DEFAULT_LEADERBOARD}")
    if args.check:
        problems = leaderboard.provenance_problems(args.results)
        for line in problems[:10]:
            print(f"bench: {line}", file=sys.stderr)
        if problems:
            more = f" ({len(problems) - 10} more not shown)" if len(problems) > 10 else ""
            print(f"bench: {len(problems)} result(s) do not come from a clean tree at a known commit{more}: rerun "
                  "them from a clean checkout", file=sys.stderr)
        if not leaderboard.is_current(args.results, args.output):
            print(f"{args.output} is stale: run `bench leaderboard` and commit it", file=sys.stderr)
            return 1
        if problems:
            return 1
        print(f"{args.output} is up to date")
        return 0
    if not args.output.parent.is_dir():
        raise BenchError(f"--output {args.output}: its folder {args.output.parent} does not exist")
    try:
        leaderboard.write(args.results, args.output)
    except OSError as exc:  # a read-only file system, a full disk, no permission
        raise BenchError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}")
    return 0
