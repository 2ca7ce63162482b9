"""`bench report`: a static HTML report (index.html and SVG figures) built from the results."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import DEFAULT_RESULTS
from bench.errors import BenchError

DEFAULT_SITE = Path("site")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rp = subparsers.add_parser("report", help="build a static HTML report (index.html and SVG figures) from the results")
    rp.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    rp.add_argument("--out", type=Path, default=DEFAULT_SITE, help="output folder (default: site)")


def cmd(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        problem = "is not a folder" if args.results.exists() else "does not exist"
        raise BenchError(f"results folder {args.results} {problem}")
    if args.out.exists() and not args.out.is_dir():
        raise BenchError(f"--out {args.out} is a file: give a folder to write index.html and figures/ into")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("bench report draws its figures with matplotlib: "
                         "pip install 'active-synthesis-bench[report]'") from None
    from bench import report

    try:
        written = report.build(args.results, args.out)
    except OSError as exc:  # a read-only file system, a full disk, a file where a folder goes
        raise BenchError(f"cannot write the report into {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {written[0]} and {len(written) - 1} figure(s) in {args.out / report.FIGURES}")
    return 0
