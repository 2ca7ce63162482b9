"""Measure the cifar10 suite's real-only training recipe against the recipe it replaced, over 5 seeds:
`real_only` with 100 images per class, once with the suite's own `train` section (SGD with Nesterov
momentum, a one-cycle cosine schedule, weight decay, label smoothing) and once with the earlier one
(Adam at a constant 3e-4, no weight decay, no smoothing). Everything else - model, augmentation,
epochs, batch size, data split, validation selection - is the suite's, so the two differ in the
optimisation recipe alone and cost the same number of steps.

    python -m bench.benchmarks.references.cifar10 --out /tmp/cifar10-recipes

Each recipe's cells are ordinary results written under OUT/<recipe>/ (resumable: a finished cell is
not run again). The table gives test accuracy on the 10,000 official test images and each cell's wall
time, beside the mean, standard deviation and the paired difference by seed. Run it alone with
OMP_NUM_THREADS=1 for comparable wall times.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.cli.arguments import seed_list
from bench.config import KeyedSpec, TrainRecipe, load_suite
from bench.errors import BenchError
from bench.results import iter_results
from bench.runner import run_suite

SEEDS = [0, 1, 2, 3, 4]
# The cifar10 suite's recipe up to version 2 (`train` of benchmarks/suites/cifar10.yaml at that version,
# with bf16 autocast off: the suite now trains in float32 on the CPU).
EARLIER = {"optimizer": "adam", "lr": 3e-4, "batch_size": 128, "epochs": 60, "select_on_val": True,
           "channels_last": True, "bf16_autocast": False}


def recipes(suite_train: TrainRecipe) -> dict[str, TrainRecipe]:
    """The two recipes by name; the earlier one keeps the suite's epochs and batch size (same cost)."""
    earlier = {**EARLIER, "epochs": suite_train.epochs, "batch_size": suite_train.batch_size}
    return {"suite": suite_train, "earlier": TrainRecipe(**earlier)}


def measure(out: Path, seeds: list[int], data_dir: str | None = None, quiet: bool = False) -> dict[str, dict[int, dict]]:
    """Run real_only under each recipe into OUT/<recipe>; return {recipe: {seed: result record}}."""
    found: dict[str, dict[int, dict]] = {}
    base = load_suite("cifar10", seeds=seeds)
    for name, recipe in recipes(base.train).items():
        suite = base.model_copy(update={"train": recipe, "strategies": [KeyedSpec(name="real_only")]})
        run_suite(suite, out / name, device="cpu", quiet=quiet, data_dir=data_dir)
        found[name] = {r["cell"]["seed"]: r for _, r in iter_results(out / name)
                       if r["status"] == "ok" and r["cell"]["strategy"] == "real_only" and r["cell"]["seed"] in seeds}
    return found


def table(found: dict[str, dict[int, dict]]) -> str:
    """A Markdown table: accuracy and wall time by recipe and seed, then the paired difference."""
    rows = ["| recipe | seed | test accuracy | wall time (s) | CPU time (s) |", "|---|---:|---:|---:|---:|"]
    acc: dict[str, dict[int, float]] = {}
    for name, by_seed in found.items():
        acc[name] = {s: r["metrics"]["accuracy"]["value"] for s, r in sorted(by_seed.items())}
        for s, r in sorted(by_seed.items()):
            rows.append(f"| {name} | {s} | {acc[name][s]:.4f} | {r['compute']['wall_seconds']:.0f} | {r['compute']['cpu_seconds']:.0f} |")
        values = np.array(list(acc[name].values()))
        if len(values):
            sd = values.std(ddof=1) if len(values) > 1 else float("nan")
            rows.append(f"| {name} | mean of {len(values)} | {values.mean():.4f} ± {sd:.4f} | | |")
    shared = sorted(set(acc.get("suite", {})) & set(acc.get("earlier", {})))
    if shared:
        diff = np.array([acc["suite"][s] - acc["earlier"][s] for s in shared])
        rows.append(f"\nsuite - earlier, paired by seed over {len(shared)} seeds: mean {diff.mean():+.4f}, "
                    f"min {diff.min():+.4f}, max {diff.max():+.4f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the two recipes' result files")
    parser.add_argument("--seeds", type=seed_list, default=SEEDS, help="comma-separated seeds (default 0,1,2,3,4)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        found = measure(args.out, args.seeds, args.data_dir, args.quiet)
    except BenchError as exc:  # a missing data set, an unwritable folder: one line, as from `bench`
        print(f"cifar10_reference: error: {exc}", file=sys.stderr)
        return 2
    print(table(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
