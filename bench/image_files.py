"""Reading a set of images from disk (`bench fid A B`): a folder of image files or a .npy array, as
uint8 RGB, optionally a seeded subset. Generic I/O: PIL is imported only when a folder is read.

The subset rule is the image metrics' (metrics/image_quality.py `_pick` calls `subset_indices` with the
same seed 0): a subset depends only on the set's size and the subset's, so `bench fid --samples N`
scores the images a suite's metric with `samples: N` would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from bench.errors import BenchError

SUBSET_SEED = 0
# What clean-fid's folder mode reads (cleanfid.fid.EXTENSIONS without npy), any letter case here.
IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")

# A set of images: one (N, H, W, 3) uint8 array, or a sequence of (H, W, 3) uint8 arrays of any sizes
# (read from a folder of files).
Images = Union[np.ndarray, Sequence[np.ndarray]]


def subset_indices(total: int, n: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of a seeded subset of n of `total` items (all of them, in order, if n >= total)."""
    if total <= n:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def read_image_set(path: Path, samples: int | None = None, minimum: int = 2, reason: str = "") -> Images:
    """The images of a folder of image files or of a .npy file, as uint8 RGB.

    A folder: every file with a suffix of IMAGE_SUFFIXES below it (sub-folders too, as clean-fid's
    folder mode reads), in sorted path order, each opened with PIL and converted to RGB (as clean-fid
    does); one (N, H, W, 3) array when all have one size, else a list of (H, W, 3) arrays. A .npy file:
    uint8 of shape (N, H, W, C) with C in 1, 3 or (N, H, W) greyscale, memory-mapped. `samples` keeps a
    seeded subset of that many (`subset_indices`), chosen before any image is decoded. BenchError, naming
    the path, for anything else or for fewer than `minimum` images (`reason` says why that many)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise BenchError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        if samples is not None:
            files = [files[i] for i in subset_indices(len(files), samples)]
        images: Images = [_read_image(p) for p in files]
        if len({im.shape for im in images}) == 1:
            images = np.stack(images)
    elif path.is_file() and path.suffix.lower() == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise BenchError(f"{path}: not a readable .npy array ({exc})") from None
        if (array.dtype != np.uint8 or array.ndim not in (3, 4) or min(array.shape[1:3]) < 1
                or (array.ndim == 4 and array.shape[-1] not in (1, 3))):
            raise BenchError(f"{path}: expected uint8 images of shape (N, H, W, 3), (N, H, W, 1) or (N, H, W), "
                             f"got {array.dtype} {array.shape}")
        if samples is not None and samples < len(array):
            array = array[subset_indices(len(array), samples)]  # reads only these images
        images = _as_rgb(np.asarray(array))
    elif path.exists():
        raise BenchError(f"{path}: expected a folder of image files or a .npy file")
    else:
        raise BenchError(f"{path} does not exist")
    if len(images) < minimum:
        why = f" ({reason})" if reason else ""
        raise BenchError(f"{path}: {len(images)} image(s), at least {minimum} needed{why}")
    return images


def _as_rgb(a: np.ndarray) -> np.ndarray:
    """(N, H, W), (N, H, W, 1) or (N, H, W, 3) uint8 as (N, H, W, 3): grey repeated to three channels."""
    if a.ndim == 3:
        a = a[..., None]
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _read_image(path: Path) -> np.ndarray:
    """One image file as (H, W, 3) uint8, PIL's convert('RGB') as clean-fid reads it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BenchError(f"cannot read image {path}: {exc}") from None
