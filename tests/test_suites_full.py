"""Full-size runs: the cifar10 suite on the CPU (slow) and the smoke suite on CUDA (gpu)."""
from __future__ import annotations

import json

import pytest

from bench.cli import main


@pytest.mark.slow
def test_cifar10_suite_learns_well_above_chance(tmp_path):
    assert main(["run", "--suite", "cifar10", "--seeds", "0", "--device", "cpu", "--out", str(tmp_path), "--quiet"]) == 0
    (path,) = tmp_path.glob("cifar10/v*/cpu/cifar10/n100/real_only/seed0.json")
    r = json.loads(path.read_text())
    assert r["metrics"]["accuracy"]["value"] > 0.4  # chance is 0.1


@pytest.mark.gpu
def test_smoke_suite_on_cuda_records_gpu_compute(tmp_path):
    assert main(["run", "--suite", "smoke", "--device", "cuda", "--out", str(tmp_path), "--quiet"]) == 0
    (path,) = tmp_path.glob("smoke/v*/cpu/cifar10/n10/real_only/seed0.json")
    r = json.loads(path.read_text())
    c = r["compute"]
    assert c["device"].startswith("cuda") and c["gpu_peak_memory_bytes"] > 0 and c["gpu_hours"] > 0
    assert r["hardware"]["gpus"]
