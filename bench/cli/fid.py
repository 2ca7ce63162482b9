"""`bench fid A B`: FID (and KID, coverage, density, 1-NN accuracy) between two image sets on disk.

The numbers are the registered metrics' (bench.registry.METRICS: fid, kid, coverage, density,
one_nn_accuracy), called on an evaluation context whose task's test images are A (the reference side)
and whose synthetic images are B, with sample counts that take every image of both sets; `--samples N`
first keeps a seeded subset of N images per set (bench.image_files.read_image_set).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli.arguments import image_count

if TYPE_CHECKING:  # numpy loads with the command, not with the parser
    from bench.image_files import Images

NEAREST_K = 5  # the k of coverage and density at their default parameters: k + 1 images a side
FID = ("fid",)
KID = ("kid",)
PRDC = ("coverage", "density", "one_nn_accuracy")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    f = subparsers.add_parser("fid", help="FID (and KID, coverage, density, 1-NN accuracy) between two image sets")
    f.add_argument("a", type=Path, metavar="A", help="the reference images: a folder of image files or a .npy "
                   "of uint8 (N, H, W, C) or (N, H, W)")
    f.add_argument("b", type=Path, metavar="B", help="the images to score, likewise")
    f.add_argument("--kid", action="store_true", help="also the kernel Inception distance")
    f.add_argument("--prdc", action="store_true", help="also coverage, density (k=5) and 1-NN accuracy")
    f.add_argument("--samples", type=image_count, metavar="N", help="a seeded subset of N images per set "
                   "(default: all)")
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")


def cmd(args: argparse.Namespace) -> int:
    from bench.device import resolve_device
    from bench.image_files import read_image_set

    device = str(resolve_device(args.device))
    # a covariance needs 2 images a side; coverage and density's k-NN radii need k others
    minimum, reason = (NEAREST_K + 1, f"coverage and density need {NEAREST_K} neighbours") if args.prdc \
        else (2, "FID needs a covariance")
    sets = [read_image_set(path, args.samples, minimum=minimum, reason=reason) for path in (args.a, args.b)]
    for path, images in zip((args.a, args.b), sets):
        sizes = sorted({im.shape[:2] for im in images})
        size = f"{sizes[0][1]}x{sizes[0][0]}" if len(sizes) == 1 else f"{len(sizes)} sizes"
        print(f"{path}: {len(images)} images ({size})")
    names = FID + (KID if args.kid else ()) + (PRDC if args.prdc else ())
    for name, value in image_set_scores(*sets, names, device).items():
        print(f"{name:<16} {value:.8g}")
    return 0


def image_set_scores(real: "Images", fake: "Images", names: tuple[str, ...], device: str) -> dict[str, float]:
    """The registered metrics `names` of `fake` against the reference images `real`, every image of both."""
    from types import SimpleNamespace

    import numpy as np

    from bench.api import EvalContext, Split
    from bench.registry import METRICS

    def split(images: "Images") -> Split:
        return Split(images, np.zeros(len(images), dtype=np.int64))

    task = SimpleNamespace(test=split(real), device=device, data=SimpleNamespace(modality="image"))
    ctx = EvalContext(task=task, classifier=None, y_true=task.test.y, probs=np.zeros((len(real), 1)),
                      synthetic=split(fake))
    # FID at any N of at least 2 a side, as before: the user picks the sets and sees their sizes printed
    # (a suite's `fid` refuses below 2,049 images a side, metrics/image_quality.py MIN_FID_SAMPLES)
    extra = {"fid": {"min_samples": 2}}
    return {name: float(METRICS.get(name)(ctx, samples=len(fake), reference_samples=len(real),
                                          **extra.get(name, {})).value) for name in names}
