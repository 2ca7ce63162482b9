"""Does pretraining the diffusion generator on the unlabelled training images pay on the CPU? The curve of
sample quality against pretraining steps, with the CPU seconds each point costs.

The cifar10 suite's generator (its `synthetic.generator.params`: a 0.64 M-parameter UNet at batch 32, the
CPU preset) on seed 0's budget of 100 images per class, in two ways:
  - from scratch: the suite's fit (train_steps, 600), as every cell fits it today;
  - pretrained + fine-tuned: the UNet pretrained unconditionally (the null class) on the training split's
    images without labels (bench.generator.pretraining_inputs: the 50,000 images the harness hands the
    generator, or --pretrain-images of them), then fine-tuned on the same budget for --finetune-steps.
One pretraining run of max(--steps) steps gives every point (method/generators/diffusion.py,
`pretrain_snapshots`: with a constant learning rate after warm-up the weights after k steps are those of a
k-step pretraining), each fine-tuned and scored as it is reached, so an interrupted run keeps its points.

Each point samples --samples images (an equal number per class, seeded) and scores them against as many
images of the official test split (a fixed seeded subset; the reference features are cached on disk)
with the project's registered metrics (bench fid's `image_set_scores`): KID, unbiased at any N, is the
number to read; FID at N < 2,049 a side is biased upwards and only comparable between rows of one run
(never to the suite's 2,049+-image FIDs). CPU seconds are this process's (all threads), per phase:
pretraining up to the point, the fit or fine-tuning, sampling; scoring is left out. Run it alone, on one
thread, for comparable numbers:

    OMP_NUM_THREADS=1 BENCH_DATA_DIR=/work/shared/data python -m bench.benchmarks.diffusion_pretraining \\
        --steps 1000 2000 4000 --finetune-steps 300 --samples 500 --out /tmp/diffusion-pretraining.json

It prints a Markdown table and, with --out, writes the rows as JSON (with the parameters, so that a row
names the suite lines that reproduce it). Cost at the defaults: about 0.42 CPU-s per pretraining or
fitting step, 0.06 per sampled image, 0.3 per image through Inception on one AVX2 thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.api import Conditions
from bench.config import load_suite
from bench.generator import PRETRAIN_SEED, pretraining_inputs
from bench.image_files import subset_indices
from bench.registry import DATASETS, GENERATORS
from bench.task import Task

SEED = 0  # the cell's seed: its budget, the fit's and the samples' random numbers
SCORES = ("kid", "fid")


def build_task(data_dir: str | None, budget: int) -> Task:
    """The cifar10 suite's task for seed 0 (its budget, validation split, model and synthetic section)."""
    suite = load_suite("cifar10")
    (spec,) = suite.datasets
    data = DATASETS.build(spec.name, {**spec.params, "data_dir": data_dir}).load()
    return Task.build(data, budget=budget, val_per_class=suite.val_per_class, seed=SEED, model=suite.model,
                      recipe=suite.train, synthetic=suite.synthetic)


def samples(generator: Any, n: int, classes: int) -> tuple[np.ndarray, float]:
    """n class-balanced samples (seeded) and the CPU seconds they took."""
    labels = np.arange(n) % classes
    cpu = time.process_time()
    out = generator.sample(n, Conditions(labels=labels), np.random.default_rng(SEED))
    return np.asarray(out.x), time.process_time() - cpu


def score(reference: np.ndarray, images: np.ndarray) -> dict[str, float]:
    from bench.cli.fid import image_set_scores

    return image_set_scores(reference, images, SCORES, "cpu")


def measure(steps: list[int], finetune_steps: int, n: int, pretrain_images: int | None, data_dir: str | None,
            budget: int, overrides: dict[str, Any], emit: Any) -> list[dict[str, Any]]:
    """The curve's rows: step 0 is the from-scratch fit, every other step a pretrained + fine-tuned one."""
    task = build_task(data_dir, budget)
    info, real = task.info, task.train
    base = {**task.synthetic.generator.params, **overrides, "device": "cpu"}
    test = np.asarray(task.test.x)
    reference = test[subset_indices(len(test), n, 0)]
    rows: list[dict[str, Any]] = []

    def row(step: int, pretrain_cpu: float, unlabelled: int, generator: Any, fit_cpu: float) -> None:
        images, sample_cpu = samples(generator, n, info.num_classes)
        rows.append({"pretrain_steps": step, "pretrain_cpu_seconds": pretrain_cpu, "unlabelled_images": unlabelled,
                     "labelled_images": len(real), "fit_steps": generator.train_steps_, "fit_cpu_seconds": fit_cpu,
                     "sample_cpu_seconds": sample_cpu, "samples": n, "reference": len(reference),
                     **score(reference, images)})
        emit(rows[-1])

    if 0 in steps:
        g = GENERATORS.build("diffusion", base)
        cpu = time.process_time()
        g.fit(real, info, SEED)
        row(0, 0.0, 0, g, time.process_time() - cpu)
    at = sorted(s for s in steps if s > 0)
    if at:
        params = {**base, "pretrain_steps": max(at), "pretrain_images": pretrain_images, "finetune_steps": finetune_steps}
        x = pretraining_inputs(task, pretrain_images)  # what the harness hands the generator: no labels
        for step, state in GENERATORS.build("diffusion", params).pretrain_snapshots(x, info, PRETRAIN_SEED, at):
            g = GENERATORS.build("diffusion", {**params, "pretrain_steps": step})
            cpu = time.process_time()
            g.fit(real, info, SEED, pretrained=state)
            row(step, state["cpu_seconds"], state["examples"], g, time.process_time() - cpu)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| pretraining steps | pretraining CPU-s | unlabelled images | fit steps | fit CPU-s | KID | FID@N |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['pretrain_steps']} | {r['pretrain_cpu_seconds']:.0f} | {r['unlabelled_images']} | "
                     f"{r['fit_steps']} | {r['fit_cpu_seconds']:.0f} | {r['kid']:.4f} | {r['fid']:.1f} |")
    n = rows[0]["samples"] if rows else 0
    lines.append(f"\nN = {n} samples against {n} test images a side; FID@N biased upwards at N < 2,049 (read KID).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[0, 1000, 2000, 4000],
                   help="pretraining step counts (0: the from-scratch fit); default: 0 1000 2000 4000")
    p.add_argument("--finetune-steps", type=int, default=300, help="fine-tuning steps on the budget (default 300)")
    p.add_argument("--samples", type=int, default=500, help="images a side for KID and FID (default 500)")
    p.add_argument("--pretrain-images", type=int, default=None, help="unlabelled training images (default: all)")
    p.add_argument("--budget", type=int, default=100, help="labelled images per class (default 100)")
    p.add_argument("--set", dest="overrides", default="{}", help="JSON of generator parameters over the suite's")
    p.add_argument("--data-dir", default=None, help="default: BENCH_DATA_DIR")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    overrides = json.loads(args.overrides)
    found: list[dict[str, Any]] = []

    def emit(r: dict[str, Any]) -> None:
        found.append(r)
        print(json.dumps(r), flush=True)
        if args.out is not None:
            args.out.write_text(json.dumps({"args": {**vars(args), "out": str(args.out)}, "rows": found}, indent=1))

    rows = measure(sorted(set(args.steps)), args.finetune_steps, args.samples, args.pretrain_images, args.data_dir,
                   args.budget, overrides, emit)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
