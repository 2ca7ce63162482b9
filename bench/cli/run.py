"""`bench run`: run every cell of a suite (resumable); exit 0 when every cell finished, 1 with error cells.

`--until-mde POINTS` adds seeds in batches until the suite's key comparisons (each method against each
reference, as `bench plan` reads them) can detect POINTS: after the first batch (the suite's seeds or
`--seeds`), while some key comparison's minimum detectable effect (MDE, points) is above POINTS and fewer
than `--max-seeds` seeds ran, the next `--seed-batch` seeds (after the largest seed used) run and the plan
is recomputed from the results folder. A comparison with the same model in every seed counts as reached;
one with fewer than 2 paired ok seeds has no MDE yet and counts as not reached.
"""
from __future__ import annotations

import argparse
import math
import sys

from bench.cli.arguments import (
    DEFAULT_RESULTS,
    DEFAULT_RUNS,
    add_suite_options,
    at_least_zero,
    out_folder,
    positive,
    seed_list,
    suite_overrides,
    whole,
)
from bench.errors import BenchError

DEFAULT_MAX_SEEDS = 20  # --until-mde: seeds in all; a key comparison not reached by then gets bench plan's estimate
DEFAULT_SEED_BATCH = 2  # --until-mde: seeds added per batch (2: one more pair per comparison is a small step)


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
    from bench.kernels import KERNELS  # standard library only, like this module's own imports

    r.add_argument("--kernels", choices=KERNELS, default="portable",
                   help="portable (default): torch, MKL and oneDNN use AVX2 kernels on every x86-64 processor, so a "
                   "cell gives the same numbers on an AVX-512 Xeon as on an AVX2 machine; native: each library "
                   "uses this processor's widest instructions (faster on AVX-512, numbers of this processor kind)")
    r.add_argument("--until-mde", type=positive("--until-mde", "points"), metavar="POINTS",
                   help="after the first seeds, add seeds in batches until every key comparison (each method "
                   "against each reference) can detect POINTS (0.01 of the primary metric; 80%% power, two-sided "
                   "0.05), or --max-seeds ran")
    r.add_argument("--max-seeds", type=whole("--max-seeds"), metavar="N",
                   help=f"with --until-mde: stop at N seeds in all (default {DEFAULT_MAX_SEEDS})")
    r.add_argument("--seed-batch", type=whole("--seed-batch"), metavar="K",
                   help=f"with --until-mde: seeds added per batch (default {DEFAULT_SEED_BATCH})")
    r.add_argument("--gpus-per-cell", type=at_least_zero("--gpus-per-cell", "GPUs"), metavar="G",
                   help="ray: GPUs a cell's task declares (default 0; 0.5: two cells share a GPU)")


def cmd(args: argparse.Namespace) -> int:
    # What the arguments alone can refuse is refused before torch and the plug-ins load (seconds on a
    # loaded machine): the device, the executor's settings, the suite's name and preset.
    from bench.kernels import pin_kernels

    pin_kernels(args.kernels)  # before anything loads torch (its kernels are chosen when it loads)
    from bench.config import load_suite
    from bench.device import check_cuda_quickly
    from bench.executors import make_executor

    if args.executor != "ray":  # a Ray cluster's machines may have the GPU this one lacks
        check_cuda_quickly(args.device)
    executor = make_executor(args.executor, workers=args.workers, address=args.address,
                             cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell)
    if args.until_mde is None and (args.max_seeds is not None or args.seed_batch is not None):
        raise BenchError("--max-seeds and --seed-batch go with --until-mde POINTS")

    def load(seeds: list[int] | None):
        suite = load_suite(args.suite, preset=args.preset, seeds=seeds, model_path=args.sd_path,
                           lm_path=args.lm_path, overrides=suite_overrides(args))
        return suite.model_copy(update={"keep_synthetic": True}) if args.keep_synthetic else suite

    suite = load(args.seeds)
    max_seeds = args.max_seeds or DEFAULT_MAX_SEEDS
    if args.until_mde is not None:
        check_until_mde(suite, max_seeds)
    from bench.runner import run_suite

    def run(suite):
        return run_suite(suite, args.out, device=args.device, force=args.force, quiet=args.quiet,
                         data_dir=args.data_dir, cell_timeout=args.cell_timeout, executor=executor,
                         history=(DEFAULT_RESULTS,))  # the committed cells' costs inform the estimate

    if args.until_mde is None:
        s = run(suite)
    else:
        s = run_until_mde(suite, load, run, args.out, args.until_mde, max_seeds,
                          args.seed_batch or DEFAULT_SEED_BATCH)
    print(f"{suite.name} [{suite.preset}]: {len(s.done)} done, {len(s.skipped)} up to date, "
          f"{len(s.failed)} failed; results in {args.out}")
    for path in s.failed:
        print(f"failed: {path}", file=sys.stderr)
    if s.stopped:
        print(f"bench: {s.stopped}", file=sys.stderr)
    return 1 if s.failed else 0


def check_until_mde(suite, max_seeds: int) -> None:
    """What --until-mde needs of the suite: a method, a reference, and a first batch within --max-seeds."""
    from bench.plan import key_strategies

    methods, refs = key_strategies(suite)
    if not methods or not refs:
        raise BenchError(f"--until-mde: suite {suite.name!r} needs a strategy of kind method and a reference "
                         f"(e.g. real_only) to compare; it has {'no method' if not methods else 'no reference'}")
    if max_seeds < len(suite.seeds):
        raise BenchError(f"--max-seeds {max_seeds} is below the {len(suite.seeds)} seeds of the first batch "
                         f"({', '.join(map(str, suite.seeds))})")


def next_seeds(used: list[int], k: int) -> list[int]:
    """The k seeds after the largest one used (never one already used, whatever gaps `used` has)."""
    start = max(used) + 1
    return list(range(start, start + k))


def run_until_mde(suite, load, run, out, target: float, max_seeds: int, batch: int):
    """Run `suite` (its seeds are the first batch), then batches of `batch` more seeds (`load(seeds)`: the
    suite with those seeds; `run(suite)`: a RunSummary) until the worst key comparison's MDE is at most
    `target` points or `max_seeds` seeds ran. Prints one line per batch and a final one; returns the
    summaries merged."""
    from bench.plan import key_strategies, make_plan, worst_key_comparison
    from bench.runner import RunSummary

    methods, refs = key_strategies(suite)
    keys = {(d.name, b, m, r) for d in suite.datasets for b in suite.budgets for m in methods for r in refs}
    used, total = list(suite.seeds), RunSummary()
    s = run(suite)
    while True:
        for part in ("done", "skipped", "failed", "unsaved"):
            getattr(total, part).extend(getattr(s, part))
        if s.stopped:
            total.stopped = s.stopped
            return total
        if not s.done and not s.skipped:  # every cell of the batch failed: more seeds would fail the same way
            print(f"until-mde: stopped: no cell of seeds {', '.join(map(str, suite.seeds))} finished")
            return total
        plan = make_plan(out, suite, target)
        worst, key = worst_key_comparison(plan["comparisons"], keys)
        identical = any(c["identical"] and (c["dataset"], c["budget"], c["strategy"], c["reference"]) == key
                        for c in plan["comparisons"])
        shown = "unknown" if worst == math.inf else "0 (identical models)" if identical else f"{worst:.2f} points"
        where = f"{key[0]} {key[1]}: {key[2]} vs {key[3]}" + (", under 2 paired ok seeds" if worst == math.inf else "")
        print(f"until-mde: {len(used)} seeds: worst MDE {shown} ({where}), target {target:g}")
        if worst <= target or len(used) >= max_seeds:
            break
        new = next_seeds(used, min(batch, max_seeds - len(used)))
        used += new
        suite = load(new)
        s = run(suite)
    if worst <= target:
        print(f"until-mde: reached: every key comparison detects {target:g} points at {len(used)} seeds")
    else:
        # worst finite: every key comparison has an SD, so bench plan's seeds are None only beyond its search limit
        needed = [c["seeds"] for c in plan["comparisons"] if not c["identical"]
                  and (c["dataset"], c["budget"], c["strategy"], c["reference"]) in keys]
        estimate = ("no estimate (under 2 paired ok seeds)" if worst == math.inf
                    else "more than 100,000" if None in needed else str(max(needed)))
        print(f"until-mde: not reached: worst MDE {shown} at {len(used)} seeds (--max-seeds {max_seeds}), target "
              f"{target:g}; bench plan estimates {estimate} seeds for {target:g} points")
    return total
