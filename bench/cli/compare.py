"""`bench compare REF_DIR NEW_DIR`: two result folders cell by cell (did a rerun reproduce the numbers?)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import tolerance


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    c = subparsers.add_parser("compare", help="compare two result folders cell by cell (did a rerun reproduce the "
                              "numbers?)")
    c.add_argument("ref", type=Path, metavar="REF_DIR", help="the reference results, e.g. results")
    c.add_argument("new", type=Path, metavar="NEW_DIR", help="the results to check, e.g. my-results")
    c.add_argument("--tolerance", type=tolerance, metavar="REL",
                   help="relative tolerance for every pair (default: exact when both cells ran on the CPU, "
                   "1e-4 when either ran on CUDA)")
    c.add_argument("--json", action="store_true", help="write the report as JSON to stdout")


def cmd(args: argparse.Namespace) -> int:
    import json

    from bench.compare import compare, format_report

    report = compare(args.ref, args.new, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return report.exit_code
