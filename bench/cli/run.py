"""`bench run`: run every cell of a suite (resumable); exit 0 when every cell finished, 1 with error cells."""
from __future__ import annotations

import argparse
import sys

from bench.cli.arguments import (
    DEFAULT_RUNS,
    add_suite_options,
    at_least_zero,
    out_folder,
    positive,
    seed_list,
    suite_overrides,
    whole,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("run", help="run every cell of a suite (resumable)")
    r.add_argument("--suite", required=True, help="a registered suite name or a path to a suite .yaml")
    r.add_argument("--seeds", type=seed_list, help="comma-separated seeds, overriding the suite's (e.g. 0,1,2)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    r.add_argument("--preset", default="cpu", help="cpu (default) or a preset the suite defines, e.g. gpu")
    r.add_argument("--out", type=out_folder, default=DEFAULT_RUNS, help=f"results folder (default: {DEFAULT_RUNS}, which git "
                   "ignores; the committed results are `--out results`)")
    r.add_argument("--data-dir", help="folder holding the data sets (default: BENCH_DATA_DIR, shared data, cache)")
    r.add_argument("--force", action="store_true", help="recompute cells whose result is up to date")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--cell-timeout", type=positive("--cell-timeout", "seconds"), metavar="SECONDS",
                   help="a cell running longer becomes an error result (type Timeout) and the run goes on; "
                   "overrides the suite's cell_timeout")
    add_suite_options(r)
    r.add_argument("--keep-synthetic", action="store_true", help="also save each cell's whole synthetic split "
                   "under OUT/.synthetic (not for git), so that `bench rescore` can compute synthetic-quality metrics "
                   "later; sets the suite's keep_synthetic")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where cells run: local (default; this machine) or ray (Ray tasks on a cluster, or on a Ray "
                   "instance started here); results are written by this process either way")
    r.add_argument("--workers", type=whole("--workers"), metavar="N",
                   help="local: N worker processes, each with max(1, cores // N) torch threads (default 1: cells run "
                   "one after another in this process); ray: at most N tasks in flight (default: as the cluster allows)")
    r.add_argument("--address", metavar="auto|HOST:PORT", help="ray: the cluster to join, auto (the one started on "
                   "this machine with `ray start`, or RAY_ADDRESS) or its head node's HOST:PORT; default: start a "
                   "Ray instance on this machine")
    r.add_argument("--cpus-per-cell", type=positive("--cpus-per-cell", "CPUs"), metavar="C",
                   help="ray: CPUs a cell's task declares (default 1; fractions allowed); it runs with max(1, floor(C)) "
                   "torch threads")
    r.add_argument("--gpus-per-cell", type=at_least_zero("--gpus-per-cell", "GPUs"), metavar="G",
                   help="ray: GPUs a cell's task declares (default 0; 0.5: two cells share a GPU)")


def cmd(args: argparse.Namespace) -> int:
    # What the arguments alone can refuse is refused before torch and the plug-ins load (seconds on a
    # loaded machine): the device, the executor's settings, the suite's name and preset.
    from bench.config import load_suite
    from bench.device import check_cuda_quickly
    from bench.executors import make_executor

    if args.executor != "ray":  # a Ray cluster's machines may have the GPU this one lacks
        check_cuda_quickly(args.device)
    executor = make_executor(args.executor, workers=args.workers, address=args.address,
                             cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell)
    suite = load_suite(args.suite, preset=args.preset, seeds=args.seeds, model_path=args.sd_path,
                       lm_path=args.lm_path, overrides=suite_overrides(args))
    from bench.runner import run_suite
    if args.keep_synthetic:
        suite = suite.model_copy(update={"keep_synthetic": True})
    s = run_suite(suite, args.out, device=args.device, force=args.force, quiet=args.quiet, data_dir=args.data_dir,
                  cell_timeout=args.cell_timeout, executor=executor)
    print(f"{suite.name} [{suite.preset}]: {len(s.done)} done, {len(s.skipped)} up to date, "
          f"{len(s.failed)} failed; results in {args.out}")
    for path in s.failed:
        print(f"failed: {path}", file=sys.stderr)
    if s.stopped:
        print(f"bench: {s.stopped}", file=sys.stderr)
    return 1 if s.failed else 0
