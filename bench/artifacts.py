"""A finished cell's artifacts: what `bench rescore` needs to compute metrics later without retraining,
and what the report shows of the data a strategy synthesised.

Beside every result `seed<k>.json` lies `seed<k>.npz` (numpy's compressed archive, no pickled objects),
its file name, size and sha256 recorded in the result under `artifacts`:
  probs           the test-set predicted probabilities (N, C), float32; float64 where rounding to float32
                  would change them (an ensemble's average of float32 softmaxes), so that a metric computed
                  later sees exactly the numbers the run scored (they are evaluated as float64).
  thumbnails      image strategies that added synthetic images: up to THUMBNAILS uint8 images (k, h, w, c),
                  at most THUMBNAIL_SIDE pixels a side (larger ones are block-averaged down).
  texts           text strategies that added synthetic texts: up to TEXTS strings, each cut at TEXT_CHARS.
  sample_labels, sample_classes   the class index and class name of each thumbnail or text.
The sample is seeded by the cell's seed and spread over the classes (round robin over a seeded shuffle
of each class). Tables and vectors keep no sample: rows make no figure.

With `keep_synthetic` (the suite's field, or `bench run --keep-synthetic`) the whole synthetic split is
saved too, as <out>/SYNTHETIC_DIR/<the result's path below out>.npz (images can be large: the folder is
git-ignored), so that synthetic-quality metrics (FID, BLEU, sdmetrics, ...) can be recomputed; the
result records it under `artifacts.synthetic` ({file relative to <out>, bytes, sha256}, or null when
the strategy added no synthetic data).

How they travel: `bench.runner.run_cell` puts the arrays in the record under PAYLOAD (a record reaches the
driver by pickle from an executor's workers); `bench.results.write_result` writes them (`write_payload`)
before the JSON that names them, so a result never points at a missing file. Readers verify the sha256
before use (`read_sidecar`, `read_synthetic`): a damaged or replaced file is a BenchError naming it.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.api import Split
from bench.data import write_atomic
from bench.errors import BenchError

PAYLOAD = "_artifacts"  # record key of the arrays on their way to the writer; never in a result file
SYNTHETIC_DIR = ".synthetic"  # under the results folder: whole synthetic splits (--keep-synthetic)
THUMBNAILS = 16  # synthetic images kept per cell for figures
THUMBNAIL_SIDE = 32  # pixels: the image data sets' own size (CIFAR-10, UTKFace crops 32, MedMNIST 28)
TEXTS = 8  # synthetic texts kept per cell
TEXT_CHARS = 1000  # characters kept of each text (a figure or a table shows the start)
# Bytes an artifacts file may take on disk and once inflated (every array of it together): a sidecar
# holds test probabilities and 16 thumbnails (kilobytes to a few MB); a kept synthetic split of
# CIFAR-10's size is 150 MB raw. A file past either cap (a zip bomb: 28 MB that inflate to 6 GiB) is
# refused before it is inflated.
MAX_ARTIFACT_BYTES = 2**30
MAX_INFLATED_BYTES = 4 * 2**30


def collect(probs: np.ndarray, synthetic: Split | None, modality: str, classes: list[str], seed: int,
            keep_synthetic: bool = False) -> dict[str, Any]:
    """The artifacts of a finished cell, as a record's PAYLOAD: {"sidecar": arrays of seed<k>.npz} and,
    with `keep_synthetic`, {"synthetic": the encoded split, or None when the strategy added none}."""
    sidecar: dict[str, np.ndarray] = {"probs": stored_probs(probs)}
    if synthetic is not None and len(synthetic) > 0:
        sidecar.update(_sample(synthetic, modality, classes, seed))
    payload: dict[str, Any] = {"sidecar": sidecar}
    if keep_synthetic:
        if synthetic is None or len(synthetic) == 0:
            payload["synthetic"] = None
        else:
            try:
                payload["synthetic"] = encode_split(synthetic)
            except ValueError as exc:  # an input numpy cannot store without pickle: the cell's metrics stand
                print(f"bench: warning: the synthetic split is not kept: {exc}", file=sys.stderr)
    return payload


def stored_probs(probs: np.ndarray) -> np.ndarray:
    """float32 where that holds the probabilities exactly (a softmax computed in float32), else float64."""
    p = np.asarray(probs, dtype=np.float64)
    p32 = p.astype(np.float32)
    return p32 if np.array_equal(p32.astype(np.float64), p, equal_nan=True) else p


def spread_sample(y: np.ndarray, k: int, seed: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Up to k indices of `y` (among `eligible`), one class after another: a seeded shuffle of each
    class, then round robin over the classes in label order, so that a small sample shows every class."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    ok = np.ones(len(y), dtype=bool) if eligible is None else eligible
    per_class = [rng.permutation(np.flatnonzero((y == c) & ok)) for c in np.unique(y)]
    order = [idx[i] for i in range(max((len(p) for p in per_class), default=0)) for idx in per_class if i < len(idx)]
    return np.asarray(order[:k], dtype=np.int64)


def thumbnail(images: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """uint8 images (k, h, w[, c]) as (k, h', w', c) with max(h', w') <= side: block means over f x f
    pixels, f the smallest whole factor that fits (the edge rows and columns left over are cropped)."""
    images = images[..., None] if images.ndim == 3 else images
    f = -(-max(images.shape[1:3]) // side)  # ceil
    if f <= 1:
        return np.ascontiguousarray(images)
    h, w = images.shape[1] // f * f, images.shape[2] // f * f
    blocks = images[:, :h, :w].reshape(len(images), h // f, f, w // f, f, images.shape[3]).astype(np.float64)
    return np.rint(blocks.mean(axis=(2, 4))).astype(np.uint8)


def _sample(synthetic: Split, modality: str, classes: list[str], seed: int) -> dict[str, np.ndarray]:
    """Thumbnails (image) or texts (text) of a seeded sample of the synthetic split; nothing otherwise."""
    x, y = synthetic.x, np.asarray(synthetic.y)
    if modality == "image" and isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim in (3, 4):
        idx = spread_sample(y, THUMBNAILS, seed)
        out = {"thumbnails": thumbnail(x[idx])}
    elif modality == "text":
        is_text = np.array([isinstance(t, str) for t in np.asarray(x, dtype=object).reshape(-1)], dtype=bool)
        if len(is_text) != len(y) or not is_text.any():  # embedding-space examples only (SMOTE on text)
            return {}
        idx = spread_sample(y, TEXTS, seed, eligible=is_text)
        out = {"texts": np.array([x[i][:TEXT_CHARS] for i in idx], dtype=str)}
    else:
        return {}
    out["sample_labels"] = y[idx].astype(np.int64)
    out["sample_classes"] = np.array([classes[int(c)] if 0 <= int(c) < len(classes) else str(c) for c in y[idx]],
                                     dtype=str)
    return out


# ------------------------------------------------------------------ splits as arrays, without pickle


def encode_split(split: Split) -> dict[str, np.ndarray]:
    """A Split as plain arrays for np.savez: `x`, `y` and each group; a text split's object array is
    stored as its strings (`x.text`), which of them are strings (`x.is_text`) and the embedding-space
    examples stacked (`x.vectors`). ValueError for an object that is neither."""
    out: dict[str, np.ndarray] = {"y": np.asarray(split.y)}
    out.update(_encode_column("x", split.x))
    names = list(split.groups)
    out["group_names"] = np.array(names, dtype=str)
    for i, name in enumerate(names):
        out.update(_encode_column(f"group{i}", split.groups[name]))
    return out


def decode_split(arrays: dict[str, np.ndarray]) -> Split:
    names = [str(n) for n in arrays["group_names"].tolist()]
    return Split(x=_decode_column("x", arrays), y=arrays["y"],
                 groups={name: _decode_column(f"group{i}", arrays) for i, name in enumerate(names)})


def _encode_column(key: str, values: Any) -> dict[str, np.ndarray]:
    a = np.asarray(values)
    if a.dtype != object:
        return {key: a}
    items = a.reshape(-1).tolist()
    is_text = np.array([isinstance(v, str) for v in items], dtype=bool)
    texts = [v for v in items if isinstance(v, str)]
    if any("\x00" in t for t in texts):  # numpy's fixed-width strings drop trailing NULs
        raise ValueError(f"{key}: a text holds a NUL character")
    others = [np.asarray(v) for v in items if not isinstance(v, str)]
    if any(o.dtype == object for o in others):
        raise ValueError(f"{key}: holds {type(items[int(np.flatnonzero(~is_text)[0])]).__name__} objects, "
                         "neither text nor numeric arrays")
    out = {f"{key}.is_text": is_text, f"{key}.text": np.array(texts, dtype=str)}
    if others:
        try:
            out[f"{key}.vectors"] = np.stack(others)
        except ValueError:
            raise ValueError(f"{key}: its embedding-space examples differ in shape") from None
    return out


def _decode_column(key: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    if key in arrays:
        return arrays[key]
    is_text = arrays[f"{key}.is_text"]
    texts = iter(arrays[f"{key}.text"].tolist())  # Python str, as the run held them
    vectors = iter(arrays[f"{key}.vectors"]) if f"{key}.vectors" in arrays else iter(())
    out = np.empty(len(is_text), dtype=object)
    out[:] = [next(texts) if t else np.array(next(vectors)) for t in is_text.tolist()]
    return out


# ------------------------------------------------------------------------------------ write and read


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def sidecar_path(result: Path) -> Path:
    return result.with_suffix(".npz")


def synthetic_relpath(result: Path) -> Path:
    """Where a result's kept synthetic split lives, relative to the results folder (the result's seven
    path parts below it: suite, version, preset, data set, budget, strategy, seed)."""
    return Path(SYNTHETIC_DIR, *result.parts[-7:]).with_suffix(".npz")


def results_root(result: Path) -> Path:
    """The results folder a cell's result lies in (bench.results.cell_path: seven parts below it)."""
    if len(result.parts) < 8:
        raise BenchError(f"{result} does not lie in a results folder (<out>/<suite>/<version>/<preset>/<data set>/"
                         "<budget>/<strategy>/seed<k>.json)")
    return result.parents[6]


def _entry(file: str, data: bytes) -> dict[str, Any]:
    return {"file": file, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_payload(path: Path, record: dict[str, Any]) -> list[tuple[Path, bytes]]:
    """Take the record's PAYLOAD out, set its `artifacts` entry, and return the files to write (path,
    bytes): the caller writes them (`write_files`) before the JSON (bench.results.write_result)."""
    payload = record.pop(PAYLOAD, None)
    if not payload:
        return []
    data = npz_bytes(payload["sidecar"])
    entry = _entry(sidecar_path(path).name, data)
    files = [(sidecar_path(path), data)]
    if "synthetic" in payload:
        if payload["synthetic"] is None:
            entry["synthetic"] = None
        else:
            rel = synthetic_relpath(path)
            blob = npz_bytes(payload["synthetic"])
            entry["synthetic"] = _entry(rel.as_posix(), blob)
            files.append((results_root(path) / rel, blob))
    record["artifacts"] = entry
    return files


def write_files(files: list[tuple[Path, bytes]], prefix: str) -> None:
    """Each file atomically; `prefix` names the temporary files (the results' TEMP_PREFIX, so that the
    leftovers of a killed run are cleaned like a result's)."""
    for target, data in files:
        write_atomic(target, data, prefix=prefix)


def read_regular(path: Path, cap: int, what: str, expected_size: int | None = None) -> bytes:
    """The bytes of `path` if it is a regular file (not a symlink, device, FIFO or folder) of at most
    `cap` bytes (and of exactly `expected_size` where given), checked on the open file before reading;
    BenchError naming it otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise BenchError(f"{what} {path} is missing") from None
    except OSError as exc:
        if os.path.islink(path):
            raise BenchError(f"{what} {path} is a symbolic link: only regular files are read") from None
        if os.path.isdir(path):
            raise BenchError(f"{what} {path} is a folder, not a file") from None
        raise BenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
            raise BenchError(f"{what} {path} is {kind}, not a file" if kind == "a folder" else f"{what} {path} is {kind}")
        if st.st_size > cap:
            raise BenchError(f"{what} {path} is {st.st_size:,} bytes, more than the {cap:,} a {what} may take")
        if expected_size is not None and st.st_size != expected_size:
            raise BenchError(f"{what} {path} is damaged: {st.st_size:,} bytes, not the {expected_size:,} its result "
                             "records; rerun the cell with `bench run --force`")
        chunks, left = [], cap + 1
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
    except OSError as exc:
        raise BenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap:  # grew while read
        raise BenchError(f"{what} {path} is more than the {cap:,} bytes a {what} may take")
    return data


def _checked_bytes(path: Path, entry: dict[str, Any], what: str) -> bytes:
    """The file's bytes, its size and sha256 those the result records."""
    data = read_regular(path, MAX_ARTIFACT_BYTES, what, expected_size=entry["bytes"])
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise BenchError(f"{what} {path} is damaged: its sha256 {digest[:12]}... is not the {entry['sha256'][:12]}... "
                         "its result records; rerun the cell with `bench run --force`")
    return data


def verify_sidecar_file(result: Path, entry: dict[str, Any]) -> None:
    """BenchError naming it unless the artifacts file a result names is a regular file with the size and
    sha256 the result records (read by bench.results.read_valid_result; nothing is inflated)."""
    _checked_bytes(Path(result).parent / entry["file"], entry, "artifact file")


def load_npz(data: bytes, where: Path, cap: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of an npz archive (no pickles), each member's inflated size checked against what is
    left of `cap` before it is inflated, and each array's header against its member's size (an .npy
    header may claim any shape); BenchError naming `where` otherwise."""
    cap = MAX_INFLATED_BYTES if cap is None else cap
    out: dict[str, np.ndarray] = {}
    left = cap
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.file_size > left:
                    raise BenchError(f"{where} inflates to more than {cap:,} bytes: refused")
                left -= info.file_size
                with zf.open(info) as member:  # reads at most file_size bytes, then checks the CRC
                    raw = member.read()
                if len(raw) != info.file_size:
                    raise BenchError(f"{where} cannot be read: member {info.filename} is truncated")
                buf = io.BytesIO(raw)
                version = np.lib.format.read_magic(buf)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(buf)  # version 3.0 (utf-8 field names) is not what np.savez writes
                if dtype.hasobject:
                    raise BenchError(f"{where} cannot be read: member {info.filename} holds Python objects")
                if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > len(raw):
                    raise BenchError(f"{where} cannot be read: member {info.filename} claims a shape {shape} "
                                     "larger than its data")
                buf.seek(0)
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                out[name] = np.lib.format.read_array(buf, allow_pickle=False)
    except BenchError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise BenchError(f"{where} cannot be read: {exc}") from None
    return out


def _verified(path: Path, entry: dict[str, Any], what: str) -> dict[str, np.ndarray]:
    """The arrays of an artifacts file: size and sha256 checked before a byte is inflated, then
    inflated within MAX_INFLATED_BYTES."""
    return load_npz(_checked_bytes(path, entry, what), path)


def has_sidecar(record: dict[str, Any]) -> bool:
    return isinstance(record.get("artifacts"), dict)


def read_sidecar(result: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a result's sidecar, checked against the sha256 the result records."""
    entry = record["artifacts"]
    path = Path(result).parent / entry["file"]
    arrays = _verified(path, entry, "artifact file")
    if "probs" not in arrays or arrays["probs"].ndim != 2:
        raise BenchError(f"artifact file {path} holds no (N, C) test probabilities")
    return arrays


def kept_synthetic(record: dict[str, Any]) -> bool:
    """Whether the cell kept its synthetic split (possibly None: the strategy added none)."""
    return has_sidecar(record) and "synthetic" in record["artifacts"]


def read_synthetic(result: Path, record: dict[str, Any]) -> Split | None:
    """The kept synthetic split of a result (None where the strategy added none), sha256 checked."""
    entry = record["artifacts"]["synthetic"]
    if entry is None:
        return None
    rel = Path(entry["file"])
    if rel.is_absolute() or ".." in rel.parts or rel.parts[:1] != (SYNTHETIC_DIR,):
        raise BenchError(f"{result}: artifacts.synthetic.file {entry['file']!r} is not a path under {SYNTHETIC_DIR}/")
    arrays = _verified(results_root(Path(result)) / rel, entry, "kept synthetic split")
    try:
        return decode_split(arrays)
    except (KeyError, StopIteration, ValueError) as exc:
        raise BenchError(f"kept synthetic split of {result} is incomplete: {exc}") from None


def verify(result: Path, record: dict[str, Any], synthetic: bool = False) -> None:
    """BenchError naming the file unless the result's artifacts file (and, with `synthetic`, its kept
    synthetic split) matches the sha256 the result records and reads back."""
    read_sidecar(result, record)
    if synthetic and kept_synthetic(record):
        read_synthetic(result, record)
