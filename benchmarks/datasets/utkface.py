"""UTKFace (Zhang et al. 2017), the aligned and cropped faces of `crop_part1`, downscaled to 32x32 RGB:
9,778 images, gender classification (0 = male: 4,372, 1 = female: 5,406) with race as the sensitive
attribute. A stand-in for CelebA (DATA.md). Non-commercial research use only.

Files: `utkface_crop_part1_32.npz` (images uint8 (N, 32, 32, 3), filename, age, gender, race) and
`labels.csv` (file, age, gender, race; the labels parsed from the original file names). Labels are
read from labels.csv; its rows must name the same files, in the same order, as the archive, and the
archive's own label arrays must agree with it, or loading fails.

UTKFace has no official split. Here: a seeded 80/20 train/test split, stratified on gender x race (so
both splits keep the 10 gender-race proportions), made once with scikit-learn's train_test_split at
SPLIT_SEED; every run, strategy and seed sees the very same test set. Changing TEST_FRACTION or
SPLIT_SEED changes every score: bump the versions of the suites that use this data set.

Sensitive attribute: `groups["race"]`, one name per image (white, black, asian, indian, others: the
UTKFace codes 0-4), in the training and the test split.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from bench.api import DatasetSplits, Split
from bench.data import DataFile, locate, verified_cache
from bench.errors import BenchError
from bench.registry import DATASETS

# No download source: the 32x32 archive is derived from the original JPEGs for this benchmark.
FILES = (
    DataFile("utkface_crop_part1_32.npz", "93c872ad3c65474ab5079890df0ae6176983894bda3eada8ec80c09b36213712"),
    DataFile("labels.csv", "3c7759acddb3555e2ac24391c80abc1da51e3f89d8680e20e2e2d512f064a164"),
)
CLASSES = ["male", "female"]  # the UTKFace gender codes 0 and 1
RACES = np.array(["white", "black", "asian", "indian", "others"])  # the UTKFace race codes 0-4
TEST_FRACTION = 0.2  # of all images (1,956 test images)
SPLIT_SEED = 0  # random_state of the one train/test split


def split_indices(strata: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices of a seeded split stratified on `strata` (one code per row)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(strata)), test_size=test_fraction, random_state=seed,
                                   stratify=strata)
    return np.sort(train), np.sort(test)


def _read_labels(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return {"file": np.array([r["file"] for r in rows]),
                **{k: np.array([int(r[k]) for r in rows], dtype=np.int64) for k in ("age", "gender", "race")}}
    except (OSError, KeyError, ValueError, TypeError) as exc:  # unreadable file, missing column, bad number
        raise BenchError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def _decode(folder: Path) -> dict[str, np.ndarray]:
    archive = folder / FILES[0].name
    try:
        with np.load(archive, allow_pickle=False) as z:
            images, names = z["images"], z["filename"]
            codes = {k: z[k].astype(np.int64) for k in ("gender", "race")}
    except (OSError, ValueError, KeyError) as exc:  # a damaged archive or a missing key
        raise BenchError(f"cannot decode {archive}: {type(exc).__name__}: {exc}") from None
    labels = _read_labels(folder / FILES[1].name)
    if not np.array_equal(labels["file"], names) or any(not np.array_equal(labels[k], v) for k, v in codes.items()):
        raise BenchError(f"{folder / FILES[1].name} does not match {archive} (file order or labels differ)")
    gender, race = labels["gender"], labels["race"]
    if set(np.unique(gender)) - {0, 1} or set(np.unique(race)) - set(range(len(RACES))):
        raise BenchError(f"{folder / FILES[1].name}: gender must be 0/1 and race 0-{len(RACES) - 1}")
    train, test = split_indices(gender * len(RACES) + race)
    out: dict[str, np.ndarray] = {}
    for split, idx in (("train", train), ("test", test)):
        out[f"x_{split}"] = np.ascontiguousarray(images[idx], dtype=np.uint8)
        out[f"y_{split}"] = gender[idx]
        out[f"race_{split}"] = RACES[race[idx]]
    return out


@DATASETS.register("utkface", modality="image", classes=2, license="non-commercial research only",
                   train_per_class=(3498, 4324), test_per_class=(874, 1082))
class UTKFace:
    """Loads UTKFace (gender, race as sensitive attribute); `data_dir` holds a `utkface/` sub-folder."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        folder = locate("utkface", FILES, self.data_dir)
        # The split is part of the cache key: another split must not reuse these arrays.
        a = verified_cache(f"utkface-split{SPLIT_SEED}-test{TEST_FRACTION}", folder, FILES, _decode)
        return DatasetSplits(
            name="utkface", modality="image", classes=list(CLASSES),
            train=Split(a["x_train"], a["y_train"], groups={"race": a["race_train"]}),
            test=Split(a["x_test"], a["y_test"], groups={"race": a["race_test"]}),
        )
