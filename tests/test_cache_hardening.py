"""The caches under attack and under stress: a planted or damaged fitted-generator entry is never
unpickled and is refitted; a tampered data source behind the decoded-data cache is caught; a
read-only cache folder degrades to working without the cache; concurrent cold loads all succeed."""
from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bench import data as bdata
from bench import generator as bgen
from bench.data import CacheWarning, DataFile, verified_cache
from bench.errors import BenchError
from bench.generator import fitted_generator, generator_cache_path, signing_key

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache folder for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(root))
    return root


def _cache_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CacheWarning)]


# -- 1. fitted-generator cache: signed entries only ---------------------------------------------


class _Planted:
    """A pickle that creates a marker file when it is unpickled (what an attacker's payload does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _fit(task, components: int = 2):
    return fitted_generator(task, "pca_gmm", {"components": components})


def test_a_planted_pickle_is_never_unpickled_and_the_generator_is_refitted(cache, tiny_task, tmp_path):
    _, log = _fit(tiny_task)
    path = generator_cache_path("pca_gmm", log["key"])
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Planted(marker)))  # what an attacker with write access plants
    with pytest.warns(CacheWarning) as record:
        generator, log = _fit(tiny_task)
    assert not marker.exists()
    assert log["cached"] is False and hasattr(generator, "pca_")
    (message,) = _cache_warnings(record)
    assert str(path) in message and "not signed" in message and "\n" not in message
    # The entry was overwritten with a signed one, which the next run loads without a word.
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert _fit(tiny_task)[1]["cached"] is True


def test_the_planted_pickle_would_have_run(tmp_path):
    """The payload of the test above is live: plain pickle.loads runs it."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Planted(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "signed_for_another_key"])
def test_a_damaged_entry_is_refitted_with_a_warning_naming_it(cache, tiny_task, damage):
    _, log = _fit(tiny_task)
    path = generator_cache_path("pca_gmm", log["key"])
    blob = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flipped":
        path.write_bytes(blob[:-10] + bytes([blob[-10] ^ 1]) + blob[-9:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a genuine, signed entry of other parameters copied under this name
        _, other = _fit(tiny_task, components=3)
        shutil.copyfile(generator_cache_path("pca_gmm", other["key"]), path)
    with pytest.warns(CacheWarning, match=str(path).replace("\\", "\\\\")):
        assert _fit(tiny_task)[1]["cached"] is False
    assert _fit(tiny_task)[1]["cached"] is True  # overwritten with a good entry


def test_a_signed_entry_is_loaded_and_equals_the_fitted_one(cache, tiny_task):
    fitted, log = _fit(tiny_task)
    loaded, log2 = _fit(tiny_task)
    assert (log["cached"], log2["cached"]) == (False, True) and log2["key"] == log["key"]
    np.testing.assert_array_equal(loaded.pca_.components_, fitted.pca_.components_)
    assert generator_cache_path("pca_gmm", log["key"]).read_bytes().startswith(bgen._MAGIC)
    if os.name == "posix":
        assert (cache / ".key").stat().st_mode & 0o777 == 0o600
        assert generator_cache_path("pca_gmm", log["key"]).stat().st_mode & 0o077 == 0


def test_concurrent_first_runs_agree_on_one_key(cache):
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: signing_key(), range(16)))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert sorted(p.name for p in cache.iterdir()) == [".key"]  # no temporary file left behind


def test_a_key_that_others_can_read_is_refused(cache, tiny_task):
    cache.mkdir()
    (cache / ".key").write_bytes(os.urandom(32))
    os.chmod(cache / ".key", 0o644)
    with pytest.warns(CacheWarning, match=r"cache key .*\.key is unusable .*mode 644"):
        assert _fit(tiny_task)[1]["cached"] is False
    assert _fit(tiny_task)[1]["cached"] is False  # nothing stored, nothing loaded, said once
    assert not (cache / "generators").exists()


# -- 3. decoded-data cache: a tampered source is caught -----------------------------------------


def _source(folder: Path, content: bytes = bytes(range(256)) * 8) -> DataFile:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.bin").write_bytes(content)
    return DataFile("a.bin", hashlib.sha256(content).hexdigest())


def _decode(calls: list[int]):
    def decode(folder: Path) -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.frombuffer((folder / "a.bin").read_bytes(), dtype=np.uint8).copy()}
    return decode


def _flip_keeping_mtime(path: Path) -> None:
    st = path.stat()
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as they were
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_a_flipped_byte_with_restored_mtime_is_caught(cache, tmp_path):
    f = _source(tmp_path / "toy")
    calls: list[int] = []
    verified_cache("toy", tmp_path / "toy", [f], _decode(calls))
    _flip_keeping_mtime(tmp_path / "toy" / "a.bin")
    with pytest.raises(BenchError, match=r"toy/a.bin has sha256 .* expected"):
        verified_cache("toy", tmp_path / "toy", [f], _decode(calls))
    assert calls == [1]


def test_a_tampered_copy_elsewhere_does_not_borrow_the_cache(cache, tmp_path):
    f = _source(tmp_path / "good" / "toy")
    calls: list[int] = []
    verified_cache("toy", tmp_path / "good" / "toy", [f], _decode(calls))
    shutil.copytree(tmp_path / "good", tmp_path / "copy")  # copy2: same size and mtime
    _flip_keeping_mtime(tmp_path / "copy" / "toy" / "a.bin")
    with pytest.raises(BenchError, match=r"copy/toy/a.bin has sha256"):
        verified_cache("toy", tmp_path / "copy" / "toy", [f], _decode(calls))


def test_a_settled_source_is_sealed_and_any_later_write_breaks_the_seal(cache, tmp_path, monkeypatch):
    """With the racy window at 0 the seal is written at once; then a load hashes nothing, and a write
    with the mtime put back still moves ctime, so the file is hashed again and rejected."""
    monkeypatch.setattr(bdata, "RACY_SECONDS", 0.0)
    f = _source(tmp_path / "toy")
    time.sleep(0.05)  # past the file system's timestamp tick (the kernel's coarse clock, ms)
    calls: list[int] = []
    verified_cache("toy", tmp_path / "toy", [f], _decode(calls))
    assert len(list((cache / "decoded").glob("toy-*/verified-*.json"))) == 1
    hashed: list[Path] = []
    real_verify = bdata.verify_file
    monkeypatch.setattr(bdata, "verify_file", lambda p, s: (hashed.append(p), real_verify(p, s)))
    x = verified_cache("toy", tmp_path / "toy", [f], _decode(calls))["x"]
    assert hashed == [] and calls == [1] and isinstance(x, np.memmap)
    time.sleep(0.05)
    _flip_keeping_mtime(tmp_path / "toy" / "a.bin")
    with pytest.raises(BenchError, match="has sha256"):
        verified_cache("toy", tmp_path / "toy", [f], _decode(calls))
    assert hashed == [tmp_path / "toy" / "a.bin"]


def test_an_intact_second_folder_shares_the_entry_without_decoding_again(cache, tmp_path):
    f = _source(tmp_path / "a" / "toy")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    calls: list[int] = []
    first = verified_cache("toy", tmp_path / "a" / "toy", [f], _decode(calls))["x"]
    second = verified_cache("toy", tmp_path / "b" / "toy", [f], _decode(calls))["x"]
    assert calls == [1] and np.array_equal(first, second)


# -- 10. read-only cache folder -----------------------------------------------------------------


def _read_only(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `root` read-only. chmod 0o555 does that for a normal user; root ignores permissions, so
    there every write below `root` is also made to fail with EROFS, as on a read-only mount."""
    root.mkdir(parents=True, exist_ok=True)
    for folder, dirs, _ in os.walk(root):
        for d in dirs:
            os.chmod(Path(folder) / d, 0o555)
    os.chmod(root, 0o555)
    monkeypatch.setattr(bdata, "_warned_roots", set())
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    prefix = str(root.resolve())

    def below(p: object) -> bool:
        s = os.path.abspath(os.fsdecode(p))  # type: ignore[arg-type]
        return s == prefix or s.startswith(prefix + os.sep)

    def refuse(p: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))  # type: ignore[arg-type]

    real_os_open, real_open, real_mkdir = os.open, builtins.open, os.mkdir
    real_pairs = {name: getattr(os, name) for name in ("rename", "replace", "link")}

    def os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC) and below(path):
            refuse(path)
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and below(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if below(path):
            refuse(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def pair(real):
        def f(src, dst, *args, **kwargs):
            if below(src) or below(dst):
                refuse(dst)
            return real(src, dst, *args, **kwargs)
        return f

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    for name, real in real_pairs.items():
        monkeypatch.setattr(os, name, pair(real))


def test_a_read_only_cache_works_without_the_cache_with_one_warning(cache, tmp_path, tiny_task, monkeypatch):
    _read_only(cache, monkeypatch)
    f = _source(tmp_path / "toy")
    calls: list[int] = []
    with pytest.warns(CacheWarning) as record:
        x = verified_cache("toy", tmp_path / "toy", [f], _decode(calls))["x"]
        again = verified_cache("toy", tmp_path / "toy", [f], _decode(calls))["x"]
        generator, log = _fit(tiny_task)
        _, log2 = _fit(tiny_task)
    assert calls == [1, 1] and np.array_equal(x, again)  # decoded in memory each time
    assert (log["cached"], log2["cached"]) == (False, False) and hasattr(generator, "pca_")
    (message,) = _cache_warnings(record)  # one line, once, for data and generators together
    assert f"cannot write to the cache folder {cache}" in message and "working without the cache" in message
    assert list(cache.iterdir()) == []


def test_a_filled_cache_made_read_only_is_still_used(cache, tmp_path, tiny_task, monkeypatch):
    f = _source(tmp_path / "toy")
    calls: list[int] = []
    verified_cache("toy", tmp_path / "toy", [f], _decode(calls))
    _fit(tiny_task)
    _read_only(cache, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert isinstance(verified_cache("toy", tmp_path / "toy", [f], _decode(calls))["x"], np.memmap)
        assert _fit(tiny_task)[1]["cached"] is True
    assert calls == [1]


def test_a_download_into_a_read_only_cache_is_a_one_line_error(cache, tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(bdata, "SHARED_DATA_DIR", tmp_path / "shared")
    _read_only(cache, monkeypatch)
    source = tmp_path / "mirror.bin"
    source.write_bytes(b"payload")
    f = DataFile("a.bin", hashlib.sha256(b"payload").hexdigest(), url=source.as_uri())
    with pytest.raises(BenchError, match=r"cannot download a.bin into .*: .*BENCH_CACHE_DIR"):
        bdata.locate("toy", [f])


# -- 13. concurrent cold loads ------------------------------------------------------------------

_WORKER = textwrap.dedent("""
    import hashlib, sys, time
    from pathlib import Path
    import numpy as np
    from bench.data import DataFile, verified_cache

    folder, go = Path(sys.argv[1]), Path(sys.argv[2])
    content = (folder / "a.bin").read_bytes()
    f = DataFile("a.bin", hashlib.sha256(content).hexdigest())

    def decode(folder):
        time.sleep(0.2)  # every process is inside decode at once: they all race to fill the entry
        return {"x": np.frombuffer((folder / "a.bin").read_bytes(), dtype=np.uint8).copy(),
                "y": np.arange(7)}

    (go.parent / f"ready-{sys.argv[3]}").touch()
    while not go.exists():
        time.sleep(0.005)
    a = verified_cache("race", folder, [f], decode)
    print(hashlib.sha256(a["x"].tobytes() + a["y"].tobytes()).hexdigest())
""")


def test_concurrent_cold_loads_all_succeed_with_equal_data(cache, tmp_path):
    procs = 6
    f = _source(tmp_path / "toy")
    (tmp_path / "sync").mkdir()
    go = tmp_path / "sync" / "go"
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "toy"), str(go), str(i)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for i in range(procs)]
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "sync").glob("ready-*"))) < procs and time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            break
        time.sleep(0.01)
    go.touch()  # all imported and waiting: release them together
    outs = [w.communicate(timeout=60) for w in workers]
    assert [w.returncode for w in workers] == [0] * procs, [err[-2000:] for _, err in outs]
    expected = hashlib.sha256(np.frombuffer((tmp_path / "toy" / "a.bin").read_bytes(), np.uint8).tobytes()
                              + np.arange(7).tobytes()).hexdigest()
    assert [out.strip() for out, _ in outs] == [expected] * procs
    entries = [p.name for p in (cache / "decoded").iterdir()]
    assert len(entries) == 1 and entries[0].startswith("race-")  # no temporary folder left behind
    again = verified_cache("race", tmp_path / "toy", [f], _decode([]))
    assert isinstance(again["x"], np.memmap) and again["y"].tolist() == list(range(7))


def test_a_damaged_entry_is_replaced(cache, tmp_path):
    f = _source(tmp_path / "toy")
    calls: list[int] = []
    verified_cache("toy", tmp_path / "toy", [f], _decode(calls))
    (entry,) = (cache / "decoded").iterdir()
    (entry / "x.npy").write_bytes(b"\x93NUMPY garbage")
    assert verified_cache("toy", tmp_path / "toy", [f], _decode(calls))["x"].shape == (2048,)
    assert calls == [1, 1]
    assert isinstance(verified_cache("toy", tmp_path / "toy", [f], _decode(calls))["x"], np.memmap)
    assert calls == [1, 1] and [p.name for p in (cache / "decoded").iterdir()] == [entry.name]


def test_leftovers_of_killed_writes_are_removed_once_stale(cache, tmp_path, tiny_task):
    f = _source(tmp_path / "toy")
    _, log = _fit(tiny_task)
    path = generator_cache_path("pca_gmm", log["key"])
    (cache / "decoded").mkdir()
    digest = hashlib.sha256(f.sha256.encode()).hexdigest()[:16]
    old_dir, new_dir = cache / "decoded" / f".toy-{digest}.a.tmp", cache / "decoded" / f".toy-{digest}.b.tmp"
    old_pickle, new_pickle = path.parent / f".{path.name}.a.tmp", path.parent / f".{path.name}.b.tmp"
    for leftover in (old_dir, new_dir):
        leftover.mkdir()
        (leftover / "x.npy").write_bytes(b"partial")
    for leftover in (old_pickle, new_pickle):
        leftover.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    for leftover in (old_dir, old_pickle):
        os.utime(leftover, (two_days_ago, two_days_ago))
    verified_cache("toy", tmp_path / "toy", [f], _decode([]))
    path.unlink()
    _fit(tiny_task)
    assert not old_dir.exists() and not old_pickle.exists()
    assert new_dir.exists() and new_pickle.exists()  # perhaps a write in progress: kept


def test_an_unpicklable_generator_runs_uncached_with_a_warning(cache, tiny_task, monkeypatch):
    import threading

    from bench.method.generators.pca_gmm import PCAGaussianMixture

    real_fit = PCAGaussianMixture.fit

    def fit_holding_a_lock(self, *args):
        self.lock_ = threading.Lock()  # a lock cannot be pickled
        return real_fit(self, *args)

    monkeypatch.setattr(PCAGaussianMixture, "fit", fit_holding_a_lock)
    with pytest.warns(CacheWarning, match="cannot be pickled"):
        generator, log = _fit(tiny_task)
    assert log["cached"] is False and hasattr(generator, "pca_")


def test_cache_warnings_are_one_line_through_the_cli(capsys):
    from bench.cli import _one_line_warning
    from bench.data import CacheWarning

    _one_line_warning(CacheWarning("cannot write to the cache folder /x: Read-only file system"), CacheWarning,
                      __file__, 1)
    err = capsys.readouterr().err
    assert err == "bench: warning: cannot write to the cache folder /x: Read-only file system\n"


# -- 14. every cache entry carries a digest checked on read (issue 26) ----------------------------


def _images_and_labels(calls: list[int]):
    def decode(folder: Path) -> dict[str, np.ndarray]:
        calls.append(1)
        raw = np.frombuffer((folder / "a.bin").read_bytes(), dtype=np.uint8)
        return {"x_train": raw[:1536].reshape(16, 8, 4, 3).copy(), "y_train": (raw[:16] % 3).astype(np.int64)}
    return decode


def _rewrite_npy(path: Path, change) -> None:
    """Change the array of a cached .npy file in place (same header, same size)."""
    a = np.load(path)
    with open(path, "r+b") as f:
        np.save(f, change(a))


@pytest.mark.parametrize("tamper", ["images inverted", "labels shifted", "no digests (older version)"])
def test_a_tampered_decoded_array_is_refused_with_a_warning_and_rebuilt(cache, tmp_path, tamper):
    f = _source(tmp_path / "toy")
    calls: list[int] = []
    good = {k: np.array(v) for k, v in verified_cache("toy", tmp_path / "toy", [f], _images_and_labels(calls)).items()}
    (entry,) = (cache / "decoded").iterdir()
    if tamper == "images inverted":
        _rewrite_npy(entry / "x_train.npy", lambda a: 255 - a)
        named = entry / "x_train.npy"
    elif tamper == "labels shifted":
        _rewrite_npy(entry / "y_train.npy", lambda a: (a + 1) % 3)
        named = entry / "y_train.npy"
    else:
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({"arrays": meta["arrays"]}))
        named = entry
    with pytest.warns(CacheWarning) as record:
        again = verified_cache("toy", tmp_path / "toy", [f], _images_and_labels(calls))
    (message,) = _cache_warnings(record)
    assert str(named) in message and "\n" not in message
    assert calls == [1, 1] and all(np.array_equal(again[k], good[k]) for k in good)
    with warnings.catch_warnings():  # rebuilt: the next load is silent, from the cache
        warnings.simplefilter("error", CacheWarning)
        third = verified_cache("toy", tmp_path / "toy", [f], _images_and_labels(calls))
    assert calls == [1, 1] and np.array_equal(third["y_train"], good["y_train"])


def test_a_verified_entry_is_sealed_and_not_hashed_again(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(bdata, "RACY_SECONDS", 0.0)
    f = _source(tmp_path / "toy")
    verified_cache("toy", tmp_path / "toy", [f], _images_and_labels([]))
    time.sleep(0.05)
    verified_cache("toy", tmp_path / "toy", [f], _images_and_labels([]))  # hashes the arrays once, seals them
    hashed: list[Path] = []
    real = bdata.sha256_of
    monkeypatch.setattr(bdata, "sha256_of", lambda p, *a: (hashed.append(p), real(p, *a))[1])
    verified_cache("toy", tmp_path / "toy", [f], _images_and_labels([]))
    assert [p for p in hashed if p.suffix == ".npy"] == []


def _fake_extract(calls: list[int]):
    def extract(images, device):
        calls.append(1)
        return np.stack([np.full(2048, float(np.asarray(im).mean()), dtype=np.float32) + i
                         for i, im in enumerate(images)])
    return extract


@pytest.mark.parametrize("tamper", ["zeroed in place", "plain npy (older version)"])
def test_cached_inception_features_changed_on_disk_are_recomputed_with_a_warning(cache, monkeypatch, tamper):
    from bench.metrics import image_quality as iq

    calls: list[int] = []
    monkeypatch.setattr(iq, "_extract", _fake_extract(calls))
    images = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    iq._MEMO.clear()
    good = iq.features(images, persist=True).copy()
    (path,) = (cache / "features").iterdir()
    if tamper == "zeroed in place":
        blob = bytearray(path.read_bytes())
        blob[-4 * 2048:] = bytes(4 * 2048)  # the last row of features zeroed, nothing else touched
        path.write_bytes(bytes(blob))
    else:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros_like(good))
        path.write_bytes(buffer.getvalue())
    iq._MEMO.clear()
    with pytest.warns(CacheWarning, match=rf"Inception feature cache entry {path}"):
        again = iq.features(images, persist=True)
    assert calls == [1, 1] and np.array_equal(again, good)
    iq._MEMO.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert np.array_equal(iq.features(images, persist=True), good) and calls == [1, 1]


def test_a_changed_text_generation_entry_is_regenerated_with_a_warning(cache):
    pytest.importorskip("transformers")
    from bench.method.generators import text_lm

    path = cache / "generations" / ("0" * 64 + ".json")
    text_lm._write_cached(path, ["a positive review", "a negative review"])
    assert text_lm._read_cached(path, 2) == ["a positive review", "a negative review"]
    path.write_bytes(path.read_bytes().replace(b"positive", b"negative"))
    with pytest.warns(CacheWarning, match=rf"generated-text cache entry {path} does not match its digest"):
        assert text_lm._read_cached(path, 2) is None
    path.write_text(json.dumps(["planted", "texts"]))  # an entry of the older format, or planted
    with pytest.warns(CacheWarning, match="carries no digest"):
        assert text_lm._read_cached(path, 2) is None


@pytest.mark.parametrize("tamper", ["vector changed", "vectors swapped"])
def test_a_changed_embedding_row_is_encoded_again_with_a_warning(cache, monkeypatch, tamper):
    import sqlite3

    from bench.benchmarks.models import minilm_encoder as enc

    class FakeEncoder:
        max_seq_length = 128
        calls = 0

        def encode(self, texts, **kwargs):
            FakeEncoder.calls += len(texts)
            return np.stack([np.full(enc.EMBEDDING_DIM, len(t) / 100, dtype=np.float32) for t in texts])

    monkeypatch.setattr(enc, "_encoder", lambda device: FakeEncoder())
    enc._store.cache_clear()
    texts = ["short", "a much longer text"]
    good = enc.embed(texts)
    assert FakeEncoder.calls == 2
    db = sqlite3.connect(enc._store(str(cache)).path)
    if tamper == "vector changed":
        db.execute("UPDATE emb2 SET vec = ? WHERE key = ?", (np.zeros(enc.EMBEDDING_DIM, np.float32).tobytes(),
                                                            enc.text_key("short", 128)))
    else:
        rows = dict(db.execute("SELECT key, vec FROM emb2"))
        a, b = (enc.text_key(t, 128) for t in texts)
        db.execute("UPDATE emb2 SET vec = ? WHERE key = ?", (rows[b], a))
    db.commit()
    db.close()
    with pytest.warns(CacheWarning, match=r"text embedding cache .*1 row\(s\) do not match their digest"):
        again = enc.embed(texts)
    assert np.array_equal(again, good) and FakeEncoder.calls == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert np.array_equal(enc.embed(texts), good) and FakeEncoder.calls == 3
    enc._store.cache_clear()


def test_a_cached_generator_carries_the_cost_of_its_fit(cache, tiny_task):
    """Every strategy that samples a shared generator is charged its fit alike, cached or not."""
    _, fitted = _fit(tiny_task)
    _, cached = _fit(tiny_task)
    assert (fitted["cached"], cached["cached"]) == (False, True)
    assert fitted["fit_cpu_seconds"] > 0 and fitted["fit_seconds"] > 0
    assert (cached["fit_seconds"], cached["fit_cpu_seconds"]) == (fitted["fit_seconds"], fitted["fit_cpu_seconds"])
