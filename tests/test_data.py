from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bench import data as bdata
from bench.benchmarks.datasets.cifar10 import Cifar10
from bench.data import DataFile, locate, verified_cache
from bench.errors import BenchError


def _file(folder: Path, name: str, content: bytes) -> DataFile:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return DataFile(name, hashlib.sha256(content).hexdigest())


def test_data_dir_flag_wins_over_environment(tmp_path, monkeypatch):
    f = _file(tmp_path / "flag" / "toy", "a.bin", b"abc")
    _file(tmp_path / "env" / "toy", "a.bin", b"abc")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "env"))
    assert locate("toy", [f], tmp_path / "flag") == tmp_path / "flag" / "toy"
    assert locate("toy", [f], None) == tmp_path / "env" / "toy"


def test_missing_data_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    with pytest.raises(BenchError, match=r"data folder .*nowhere \(from --data-dir\) does not exist"):
        locate("toy", [DataFile("a.bin", "0" * 64)], tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match=r"lacks a.bin"):
        locate("toy", [DataFile("a.bin", "0" * 64)], tmp_path / "empty")


def test_shared_folder_then_download_into_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    source = tmp_path / "mirror" / "a.bin"
    source.parent.mkdir()
    source.write_bytes(b"payload")
    f = DataFile("a.bin", hashlib.sha256(b"payload").hexdigest(), url=source.as_uri())
    monkeypatch.setattr(bdata, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = locate("toy", [f])
    assert folder == tmp_path / "cache" / "data" / "toy"
    assert (folder / "a.bin").read_bytes() == b"payload"
    # With the files in the shared folder, that folder is used and nothing is downloaded.
    _file(tmp_path / "shared" / "toy", "a.bin", b"payload")
    assert locate("toy", [DataFile("a.bin", f.sha256, url="file:///nonexistent")]) == tmp_path / "shared" / "toy"


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(bdata, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "a.bin"
    source.write_bytes(b"tampered")
    with pytest.raises(BenchError, match="download of .*a.bin has sha256"):
        locate("toy", [DataFile("a.bin", "1" * 64, url=source.as_uri())])
    assert list((tmp_path / "cache" / "data" / "toy").iterdir()) == []


def _decode_counting(calls: list[int]):
    def decode(folder: Path) -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.frombuffer((folder / "a.bin").read_bytes(), dtype=np.uint8).copy()}
    return decode


def test_cache_decodes_once_and_rechecks_a_changed_file(tmp_path):
    f = _file(tmp_path / "toy", "a.bin", b"\x01\x02\x03")
    calls: list[int] = []
    a = verified_cache("toy", tmp_path / "toy", [f], _decode_counting(calls))
    b = verified_cache("toy", tmp_path / "toy", [f], _decode_counting(calls))
    assert calls == [1] and a["x"].tolist() == b["x"].tolist() == [1, 2, 3]
    (tmp_path / "toy" / "a.bin").write_bytes(b"\x01\x02")  # truncated after it was cached
    with pytest.raises(BenchError, match=r"data file .*toy/a.bin has sha256 .* expected"):
        verified_cache("toy", tmp_path / "toy", [f], _decode_counting(calls))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(BenchError, match=r"data file .*b.bin is missing"):
        verified_cache("toy", tmp_path, [DataFile("b.bin", "0" * 64)], _decode_counting([]))


def test_cifar10_loads_with_official_splits():
    d = Cifar10().load()
    assert d.train.x.shape == (50000, 32, 32, 3) and d.train.x.dtype == np.uint8
    assert d.test.x.shape == (10000, 32, 32, 3)
    assert np.bincount(d.train.y).tolist() == [5000] * 10
    assert np.bincount(d.test.y).tolist() == [1000] * 10
    assert d.classes[0] == "airplane" and d.num_classes == 10


def test_cifar10_corrupt_copy_is_rejected_naming_the_file(tmp_path):
    from bench.benchmarks.datasets.cifar10 import FILES
    folder = tmp_path / "cifar10"
    folder.mkdir()
    for f in FILES:
        src = bdata.SHARED_DATA_DIR / "cifar10" / f.name
        (folder / f.name).write_bytes(src.read_bytes()[: 1000] if f is FILES[0] else src.read_bytes())
    with pytest.raises(BenchError, match=r"train-00000-of-00001.parquet has sha256"):
        Cifar10(data_dir=str(tmp_path)).load()
