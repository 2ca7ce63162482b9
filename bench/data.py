"""The generic machinery to find, verify, download and cache data files (the data containers, Split
and DatasetSplits, are part of the plug-in contract: bench.api).

Where a data set's files are looked for, in order:
  1. the folder given with `--data-dir` (it must exist);
  2. the folder in the environment variable BENCH_DATA_DIR (it must exist);
  3. the shared data folder beside the repository (`<repo>/../shared/data`);
  4. the user cache (`<cache>/data`), filled by a download from the data set's canonical source.
A data set lives in a sub-folder named after it (e.g. `cifar10/`) of whichever folder is chosen.
Every file read is checked against the sha256 that its loader declares.

The cache (`cache_root()`) is an optimisation, never a requirement: where it cannot be written (a
read-only BENCH_CACHE_DIR, a full disk) the harness says so in one CacheWarning line and goes on
without it, decoding in memory and fitting generators without storing them. Every cache file is
written atomically (a temporary file, fsynced, renamed into place), so a kill or a concurrent process
never leaves a partial entry behind.

Nothing read back from the cache is believed: every entry carries a digest that is checked when it is
read, and an entry that does not match it (changed in place, damaged, or written by a version without
digests) is reported in one CacheWarning naming the file and rebuilt. Decoded arrays: the sha256 of
each .npy file in the entry's meta.json (`verified_cache`); single-file entries (Inception features,
generated texts): `seal_bytes` / `read_sealed`; fitted generators: an HMAC (bench.generator); text
embeddings: a digest per row (the text encoder's store).
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import secrets
import shutil
import tempfile
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from platformdirs import user_cache_dir

from bench.errors import BenchError, BenchWarning

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class DataFile:
    """A file a data set needs: its name in the data set's folder, its sha256 and where it comes from."""

    name: str
    sha256: str
    url: str | None = None


def cache_root() -> Path:
    """Where decoded arrays, downloads and fitted generators are cached (BENCH_CACHE_DIR overrides)."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or user_cache_dir("active-synthesis-bench"))


class CacheWarning(BenchWarning):
    """A cache entry or the cache folder could not be used; the work goes on without it."""


_warned_roots: set[str] = set()  # cache folders already reported unwritable in this process


def warn_cache(message: str) -> None:
    """One line about the cache, as a CacheWarning (filterable like any Python warning)."""
    warnings.warn(" ".join(message.split()), CacheWarning, stacklevel=3)


def cache_unwritable(exc: OSError) -> None:
    """Report, once per cache folder and process, that the cache cannot be written."""
    root = str(cache_root())
    if root not in _warned_roots:
        _warned_roots.add(root)
        where = f" ({exc.filename})" if exc.filename else ""
        warn_cache(f"cannot write to the cache folder {root}: {exc.strerror or exc}{where}; working without "
                   "the cache (decoded data and fitted generators are not stored); set BENCH_CACHE_DIR to a "
                   "writable folder to keep them")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder: the rename is still atomic
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o666, prefix: str = ".") -> None:
    """Write `data` to `path` through a uniquely named temporary file in the same folder
    (`<prefix><name>.<random>.tmp`), fsynced, then renamed into place, then the folder fsynced: a
    reader, or a run after a crash or a power loss, sees the old file or the whole new one. `mode` is
    filtered by the umask (0o600 for private files). OSError (a full disk, an unwritable folder, a
    folder at `path`) propagates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{prefix}{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(path.parent)


SEAL_MAGIC = b"active-synthesis-bench sha256 v1\n"  # then the 32-byte sha256 of the payload, then the payload


def seal_bytes(data: bytes) -> bytes:
    """A single-file cache entry: SEAL_MAGIC, the sha256 of `data`, then `data` (see `read_sealed`)."""
    return SEAL_MAGIC + hashlib.sha256(data).digest() + data


def read_sealed(path: Path, what: str) -> bytes | None:
    """The payload of a sealed cache entry (`seal_bytes`) at `path`; None when there is none, or, with one
    CacheWarning naming the file, when it carries no digest (an older version wrote it) or its payload
    does not match its digest (changed after it was written): the caller rebuilds and overwrites it."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror or exc})"
    else:
        head = len(SEAL_MAGIC) + hashlib.sha256().digest_size
        if len(blob) < head or not blob.startswith(SEAL_MAGIC):
            reason = "carries no digest (written by an older version, or not by the harness)"
        elif blob[len(SEAL_MAGIC):head] != hashlib.sha256(blob[head:]).digest():
            reason = "does not match its digest (changed or damaged after it was written)"
        else:
            return blob[head:]
    warn_cache(f"{what} cache entry {path} {reason}: ignored; rebuilding it")
    return None


# A temporary file or folder of a cache write older than this was left by a killed process (a
# decode or a pickle takes minutes at most): the next write beside it removes it. Seconds.
STALE_SECONDS = 24 * 3600


def remove_stale(folder: Path, pattern: str) -> None:
    """Remove leftovers matching `pattern` in `folder` that are older than STALE_SECONDS."""
    cutoff = time.time() - STALE_SECONDS
    for leftover in folder.glob(pattern):
        try:
            if leftover.lstat().st_mtime >= cutoff:
                continue  # perhaps another process's write in progress
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        except OSError:
            pass  # gone meanwhile, or not ours to remove: harmless


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
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:  # a read-only cache: a download has nowhere to go
        raise BenchError(f"cannot download {dest.name} into {dest.parent}: {exc.strerror or exc}; "
                         "set BENCH_CACHE_DIR to a writable folder, or pass --data-dir") from None
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


# A source file changed this recently may change again within one tick of the file system's
# timestamps (ext4 and xfs take them from a coarse clock, ms; FAT counts in 2 s): its stat stamp
# proves nothing yet, so it is not recorded and the file is hashed again next time (git's
# "racy clean" rule). Seconds.
RACY_SECONDS = 2.0


def verified_cache(
    key: str,
    folder: Path,
    files: Sequence[DataFile],
    decode: Callable[[Path], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Decode `files` in `folder` once into arrays cached as .npy files, and return them
    memory-mapped read-only (a cached load reads only the pages that are used: milliseconds).

    An entry is named by `key` and the sha256s the loader declares, and is only ever built from
    files that were hashed and matched them, so its arrays belong to those exact bytes whichever
    folder they came from. What saves hashing the sources on every load is a per-folder seal in the
    entry: the stat stamp (size, mtime, ctime, inode) each file had when it was last hashed there.
    A different folder, or any change to a file (ctime moves on every write and on every mtime
    restore, and cannot be set back), means that folder's files are hashed again (and a wrong one is
    a BenchError); they are hashed once, by `verify_file`, and decoded only when no entry exists.

    Concurrent processes may fill the same entry: each writes into its own temporary folder, and
    the first rename wins; a loser uses its own identical arrays. Where the cache cannot be written
    the arrays are returned from memory with one CacheWarning.
    """
    digest = hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest()[:16]
    entry = cache_root() / "decoded" / f"{key}-{digest}"
    source = folder.resolve()
    seal = entry / f"verified-{hashlib.sha256(str(source).encode()).hexdigest()[:16]}.json"
    stamped_at = time.time_ns()
    stamp = {f.name: _stat_stamp(folder / f.name) for f in files}  # before hashing: a later write moves it
    arrays, damaged = _load_entry(entry)
    if damaged is not None:
        warn_cache(f"decoded-data cache entry {damaged}: ignored; decoding the data again and replacing it")
    if arrays is not None and _read_seal(seal) == stamp:
        return arrays
    for f in files:
        verify_file(folder / f.name, f.sha256)
    settled = all(s[2] < stamped_at - RACY_SECONDS * 1e9 for s in stamp.values())
    record = (json.dumps({"source": str(source), "files": stamp}) + "\n").encode()
    fresh = arrays is None
    if fresh:
        arrays = decode(folder)
    try:
        if fresh:
            _store_entry(entry, arrays, {seal.name: record} if settled else {})
        elif settled:
            write_atomic(seal, record)  # this folder's files are known good: no hashing next time
    except OSError as exc:
        cache_unwritable(exc)
    return arrays


ARRAYS_SEAL = "arrays-verified.json"  # in an entry: the stat stamps its .npy files had when last hashed


def _read_entry(entry: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a complete cache entry that matches its digests, memory-mapped; None otherwise."""
    return _load_entry(entry)[0]


def _load_entry(entry: Path) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(arrays, None) for a complete entry whose .npy files match the sha256s in its meta.json; (None,
    None) when there is no entry; (None, what is wrong, naming the file) for a damaged or tampered one.

    Each .npy file is hashed when the entry is first read, and again whenever its stat stamp (size,
    mtime, ctime, inode) differs from the one recorded in ARRAYS_SEAL when it last matched (a write in
    place moves ctime, which cannot be set back), so that a warm load still reads only the pages it uses.
    A stamp younger than RACY_SECONDS is not recorded (see `verified_cache`)."""
    meta_path = entry / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{meta_path} cannot be read ({exc})"
    names, digests = (meta.get("arrays"), meta.get("sha256")) if isinstance(meta, dict) else (None, None)
    if not isinstance(names, list) or not all(isinstance(n, str) and n and Path(n).name == n for n in names):
        return None, f"{meta_path} names no arrays"
    if not isinstance(digests, dict) or set(digests) != set(names):
        return None, f"{entry} carries no digest of its arrays (written by an older version)"
    try:
        stamped_at = time.time_ns()
        stamps = {n: _stat_stamp(entry / f"{n}.npy") for n in names}
        if _read_seal(entry / ARRAYS_SEAL) != stamps:
            for n in names:
                if sha256_of(entry / f"{n}.npy") != digests[n]:
                    return None, f"{entry / f'{n}.npy'} does not match its digest (changed after it was written)"
            if all(s[2] < stamped_at - RACY_SECONDS * 1e9 for s in stamps.values()):
                try:
                    write_atomic(entry / ARRAYS_SEAL, (json.dumps({"files": stamps}) + "\n").encode())
                except OSError:
                    pass  # a read-only cache: hashed again next time
        return {n: np.load(entry / f"{n}.npy", mmap_mode="r") for n in names}, None  # allow_pickle stays False
    except BenchError:
        return None, f"{entry} lacks one of its arrays"
    except (OSError, ValueError) as exc:
        return None, f"{entry} cannot be read ({exc})"


def _read_seal(path: Path) -> Any:
    try:
        return json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store_entry(entry: Path, arrays: dict[str, np.ndarray], extra: dict[str, bytes]) -> None:
    """Write a cache entry into a temporary folder, then rename it into place. If another process
    put a complete entry there first, it is kept (it holds the same arrays) and ours is discarded;
    a damaged one is moved aside and replaced. Raises OSError when the cache cannot be written."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(entry.parent, f".{entry.name}.*")
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.", suffix=".tmp"))
    try:
        digests: dict[str, str] = {}
        for name, a in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(a))
            digests[name] = hashlib.sha256(buffer.getbuffer()).hexdigest()  # checked on every read (_load_entry)
            _write_synced(tmp / f"{name}.npy", buffer.getbuffer())
        meta = json.dumps({"arrays": sorted(arrays), "sha256": digests}).encode()
        for name, content in [("meta.json", meta), *extra.items()]:
            _write_synced(tmp / name, content)  # a private folder until the rename: no temporary names needed
        fsync_dir(tmp)
        if not _rename_if_absent(tmp, entry) and _read_entry(entry) is None:
            # What sits there is damaged (or half-removed by hand): move it aside, then retry once.
            aside = entry.parent / f".{entry.name}.{secrets.token_hex(8)}.damaged"
            try:
                os.rename(entry, aside)
            except FileNotFoundError:
                pass
            _rename_if_absent(tmp, entry)  # a concurrent process may have won meanwhile: fine
            shutil.rmtree(aside, ignore_errors=True)
        fsync_dir(entry.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_synced(path: Path, content: bytes | memoryview) -> None:
    with open(path, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def _rename_if_absent(src: Path, dest: Path) -> bool:
    """Rename folder `src` to `dest`; False when `dest` already exists and is not empty."""
    try:
        os.rename(src, dest)  # atomic; replaces only an empty folder
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise


def _stat_stamp(path: Path) -> list[int]:
    if not path.is_file():
        raise BenchError(f"data file {path} is missing")
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def write_sealed_array(path: Path, a: np.ndarray) -> None:
    """A numpy array cached as a sealed .npy entry (read back with read_sealed): it appears whole or not
    at all; a read-only cache is reported once (cache_unwritable) and the caller goes on from memory."""
    buffer = io.BytesIO()
    np.save(buffer, a)
    try:
        write_atomic(path, seal_bytes(buffer.getvalue()))
    except OSError as exc:
        cache_unwritable(exc)
