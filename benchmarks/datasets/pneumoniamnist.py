"""PneumoniaMNIST (MedMNIST v2, Yang et al. 2023): 28x28 greyscale paediatric chest X-rays, label 1 =
pneumonia, 0 = normal. Imbalanced: the official training split holds 4,708 images (1,214 normal /
3,494 pneumonia), the test split 624 (234 / 390).

Read from `pneumoniamnist.npz` (keys train/val/test `_images` uint8 (N, 28, 28), `_labels` uint8
(N, 1)) and cached as uint8 (N, 28, 28, 1) images (one channel, the layout every image model takes)
and int64 labels.

Splits: the official training split is the training split, the official test split the test split.
The official validation split (524 images) is not used: the harness carves its own validation split,
seeded and stratified, from the training split (bench.task), as it does for every data set, and
merging would make the training split differ from the published one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.api import DatasetSplits, Split
from bench.data import DataFile, locate, verified_cache
from bench.errors import BenchError
from bench.registry import DATASETS

# No download source: the shared copy was rebuilt from two partial public copies, with the training
# split in another order, so its checksum differs from the official MedMNIST file's (DATA.md).
FILES = (DataFile("pneumoniamnist.npz", "d0bfa3330f26554c4117328b1117f52bfb3746404b0594c58f37a09b4314d396"),)
CLASSES = ["normal", "pneumonia"]


def _decode(folder: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(folder / FILES[0].name, allow_pickle=False) as z:
            raw = {k: z[k] for k in ("train_images", "train_labels", "test_images", "test_labels")}
    except (OSError, ValueError, KeyError) as exc:  # a damaged archive or a missing key
        raise BenchError(f"cannot decode {folder / FILES[0].name}: {type(exc).__name__}: {exc}") from None
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        # (N, 28, 28) -> (N, 28, 28, 1): channels last, as for RGB images.
        out[f"x_{split}"] = np.ascontiguousarray(raw[f"{split}_images"], dtype=np.uint8)[..., None]
        out[f"y_{split}"] = raw[f"{split}_labels"].reshape(-1).astype(np.int64)
    return out


@DATASETS.register("pneumoniamnist", modality="image", classes=2, license="CC BY 4.0",
                   train_per_class=(1214, 3494), test_per_class=(234, 390))
class PneumoniaMNIST:
    """Loads PneumoniaMNIST; `data_dir` is the folder that holds a `pneumoniamnist/` sub-folder."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        folder = locate("pneumoniamnist", FILES, self.data_dir)
        a = verified_cache("pneumoniamnist", folder, FILES, _decode)
        return DatasetSplits(name="pneumoniamnist", modality="image", classes=list(CLASSES),
                             train=Split(a["x_train"], a["y_train"]), test=Split(a["x_test"], a["y_test"]))
