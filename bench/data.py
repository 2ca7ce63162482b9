"""Data containers shared by every modality, and the generic machinery to find, verify, download
and cache data files.

Where a data set's files are looked for, in order:
  1. the folder given with `--data-dir` (it must exist);
  2. the folder in the environment variable BENCH_DATA_DIR (it must exist);
  3. the shared data folder beside the repository (`<repo>/../shared/data`);
  4. the user cache (`<cache>/data`), filled by a download from the data set's canonical source.
A data set lives in a sub-folder named after it (e.g. `cifar10/`) of whichever folder is chosen.
Every file read is checked against the sha256 that its loader declares.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from platformdirs import user_cache_dir

from bench.errors import BenchError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@dataclass
class Split:
    """One split of a data set: inputs, integer labels and optional sensitive attributes.

    `x` is modality-specific: uint8 images (N, H, W, C), a table, or a list of strings.
    `groups` maps a sensitive attribute's name to one integer or string code per row.
    """

    x: Any
    y: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split(x=self.x[idx], y=self.y[idx], groups={k: v[idx] for k, v in self.groups.items()})


@dataclass
class DatasetSplits:
    """What a Dataset's `load()` returns: the official train and test splits and their description."""

    name: str
    modality: str  # "image", "tabular" or "text"
    classes: list[str]
    train: Split
    test: Split
    schema: Any = None  # tabular data: a bench.table.TableSchema (what each column of x is); else None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DataFile:
    """A file a data set needs: its name in the data set's folder, its sha256 and where it comes from."""

    name: str
    sha256: str
    url: str | None = None


def cache_root() -> Path:
    """Where decoded arrays, downloads and fitted generators are cached (BENCH_CACHE_DIR overrides)."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or user_cache_dir("active-synthesis-bench"))


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, expected_sha256: str) -> None:
    """Raise BenchError naming the file if it is missing, truncated or has the wrong checksum."""
    if not path.is_file():
        raise BenchError(f"data file {path} is missing")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise BenchError(
            f"data file {path} has sha256 {actual[:16]}..., expected {expected_sha256[:16]}... "
            "(truncated, corrupted or a different version): replace it"
        )


def download(url: str, dest: Path, expected_sha256: str) -> None:
    """Download `url` to `dest` atomically and verify its checksum; a bad download is not kept."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as exc:
            raise BenchError(f"could not download {url}: {exc}") from None
        actual = sha256_of(Path(tmp))
        if actual != expected_sha256:
            raise BenchError(f"download of {url} has sha256 {actual[:16]}..., expected {expected_sha256[:16]}...")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def locate(dataset: str, files: Sequence[DataFile], data_dir: str | Path | None = None) -> Path:
    """Return the folder holding `dataset`'s files, following the resolution order in the module
    docstring. Files are not hashed here (see `verified_cache`)."""
    explicit = [("--data-dir", data_dir), ("BENCH_DATA_DIR", os.environ.get("BENCH_DATA_DIR"))]
    for source, root in explicit:
        if root:
            root = Path(root)
            if not root.is_dir():
                raise BenchError(f"data folder {root} (from {source}) does not exist")
            folder = root / dataset
            missing = [f.name for f in files if not (folder / f.name).is_file()]
            if missing:
                raise BenchError(f"data folder {folder} (from {source}) lacks {', '.join(missing)}")
            return folder
    shared = SHARED_DATA_DIR / dataset
    if all((shared / f.name).is_file() for f in files):
        return shared
    cached = cache_root() / "data" / dataset
    for f in files:
        if not (cached / f.name).is_file():
            if f.url is None:
                raise BenchError(f"data file {f.name} of {dataset} not found and has no download source; "
                                 "pass --data-dir or set BENCH_DATA_DIR")
            download(f.url, cached / f.name, f.sha256)
    return cached


def verified_cache(
    key: str,
    folder: Path,
    files: Sequence[DataFile],
    decode: Callable[[Path], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Decode `files` in `folder` once into arrays cached as .npy files under `key`, and return them
    memory-mapped read-only (a cached load reads only the pages that are used: milliseconds).

    The source files are hashed on the first decode; later loads trust the cache as long as each
    source file keeps the size and mtime it had when it was verified (re-hashing the sources would
    cost more than loading the cache).
    """
    stamp = {f.name: _stat_stamp(folder / f.name) for f in files}
    digest = hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest()[:16]
    cached = cache_root() / "decoded" / f"{key}-{digest}"
    meta_path = cached / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("stamp") == stamp:
                return {name: np.load(cached / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    for f in files:
        verify_file(folder / f.name, f.sha256)
    arrays = decode(folder)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=f".{cached.name}."))
    try:
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(a))
        (tmp / "meta.json").write_text(json.dumps({"stamp": stamp, "source": str(folder), "arrays": sorted(arrays)}))
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)  # the entry appears whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return arrays


def _stat_stamp(path: Path) -> list[int]:
    if not path.is_file():
        raise BenchError(f"data file {path} is missing")
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]
