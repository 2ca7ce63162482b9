"""`bench rescore`: compute the metrics a suite lists that its finished results lack, from the stored
artifacts, without retraining."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import add_suite_options, seed_list, suite_overrides
from bench.errors import BenchError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rs = subparsers.add_parser("rescore", help="compute metrics a suite lists that its finished results lack, from "
                               "the stored artifacts, without retraining")
    rs.add_argument("--results", type=Path, required=True, help="the results folder of `bench run --out`")
    rs.add_argument("--suite", required=True, help="a registered suite name or a path to a suite .yaml (as it is now)")
    rs.add_argument("--preset", default="cpu", help="cpu (default) or a preset the suite defines, e.g. gpu")
    rs.add_argument("--seeds", type=seed_list, help="the seeds the cells ran with, if `bench run --seeds` overrode "
                    "the suite's")
    add_suite_options(rs, as_given=True)
    rs.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="for metrics that run a "
                    "network (FID's Inception, MiniLM); default: cuda if present")
    rs.add_argument("--data-dir", help="folder holding the data sets (default: BENCH_DATA_DIR, shared data, cache)")
    rs.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd(args: argparse.Namespace) -> int:
    from bench.config import load_suite
    from bench.rescore import rescore

    if not args.results.is_dir():  # before the suite is loaded and the data read
        problem = "is not a folder" if args.results.exists() else "does not exist"
        raise BenchError(f"results folder {args.results} {problem}")
    suite = load_suite(args.suite, preset=args.preset, seeds=args.seeds, model_path=args.sd_path,
                       lm_path=args.lm_path, overrides=suite_overrides(args))
    s = rescore(suite, args.results, device=args.device, data_dir=args.data_dir, quiet=args.quiet)
    print(f"{suite.name} [{suite.preset}]: {s.line()}; results in {args.results}")
    return 0
