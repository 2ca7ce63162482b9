"""Benchmark (pytest-benchmark): the local process pool's speed-up over one worker, with identical results.

What is measured
  * `test_one_worker_one_thread`: 32 independent cells (real_only on toy_pockets with every training
    row, an MLP of two 384-unit layers, seeds 0..31; a few seconds each on one core) run by the
    sequential executor in this process with `torch.set_num_threads(1)`: one worker of one thread.
  * `test_two_workers_one_thread_each`: the same cells with `LocalPool(workers=2, threads=1)`, timed end
    to end: the pool's start (two spawned interpreters importing torch and the plug-ins, a few seconds)
    counts, as it does for a user; this process has imported them already (a fixture), as a driver has
    by the time its first cell runs.
  * `test_pool_speedup` (runs last): one worker's seconds / two workers' seconds, asserted >= 1.6 on a
    machine with at least 2 idle cores, and the records of both runs identical (metrics, strategy logs
    without timings, config hashes). The records are compared in every run; the speed-up is asserted
    only under `--benchmark-only`, the benchmark run.

How to run (on an otherwise idle machine: the speed-up is measured against a second core)
  pytest tests/perf/test_perf_executors.py --benchmark-only -s
Without `--benchmark-only` they run at tiny sizes (2 cells of 20 training rows per class, one hidden
layer of 16 units, 2 epochs; the pool's start is most of it); under `--benchmark-disable` (`tox -e test`,
CI) once, untimed, so that an API change fails CI. The two executors' records must still be identical;
no speed-up is asserted (conftest.py says more). `--benchmark-skip`
skips them all.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.cells import expand_cells
from bench.config import load_suite
from bench.environment import code_version, package_versions
from bench.executors import Executor, LocalPool, Sequential, available_cores
from bench.registry import load_plugins
from bench.results import iter_results
from bench.runner import run_suite

MIN_SPEEDUP = 1.6  # two workers of one thread against one worker of one thread, start of the pool included


@dataclass(frozen=True)
class Sizes:
    cells: int  # seeds 0..cells-1 of one strategy: independent cells of equal size
    budget: str  # real training rows per class ("all": 2,000)
    hidden: list[int]  # the MLP's hidden layers
    epochs: int


FULL = Sizes(cells=32, budget="all", hidden=[384, 384], epochs=25)  # a few seconds a cell on one core
TINY = Sizes(cells=2, budget="20", hidden=[16], epochs=2)  # --benchmark-disable: a check that it runs


def suite_text(sizes: Sizes) -> str:
    return f"""
name: perf_executors
version: 1
primary_metric: accuracy
datasets: [toy_pockets]
budgets: [{sizes.budget}]
val_per_class: 100
test_per_class: 500
model: {{name: mlp, params: {{hidden: {sizes.hidden}}}}}
train: {{epochs: {sizes.epochs}, batch_size: 64, lr: 1.0e-3}}
strategies: [real_only]
metrics: [accuracy, macro_f1, nll]
seeds: {list(range(sizes.cells))}
"""


# Filled by the two timed runs, read by test_pool_speedup: name -> {seconds, records}.
_RESULTS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def sizes(tiny: bool) -> Sizes:
    return TINY if tiny else FULL


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory, sizes: Sizes) -> Path:
    """The suite file, with this process warmed up as a long-lived driver is (plug-ins imported, the
    provenance read): the sequential run is not charged the imports that the pool's workers pay."""
    path = tmp_path_factory.mktemp("perf-executors") / "suite.yaml"
    path.write_text(suite_text(sizes))
    load_plugins()
    assert len(expand_cells(load_suite(str(path)))) == sizes.cells
    code_version(), package_versions()
    return path


def essence(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what may differ between executors: timings, provenance, hardware."""
    log = {k: v for k, v in record["strategy_log"].items() if not k.endswith("_seconds")}
    return {"config_hash": record["config_hash"], "status": record["status"], "metrics": record["metrics"],
            "strategy_log": log, "real_data": record.get("real_data")}


def timed_run(benchmark: Any, name: str, suite_path: Path, out: Path, executor: Executor, cells: int) -> None:
    """One timed round of the whole suite into a fresh folder; the seconds and records go to _RESULTS.
    (Under --benchmark-disable the round runs once, untimed by pytest-benchmark; the seconds are its wall
    time all the same.)"""
    suite = load_suite(str(suite_path))
    seconds: list[float] = []

    def run() -> None:
        t0 = time.perf_counter()
        summary = run_suite(suite, out, device="cpu", quiet=True, force=True, executor=executor)
        seconds.append(time.perf_counter() - t0)
        assert len(summary.done) == cells and not summary.failed

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    records = {str(p.relative_to(out)): r for p, r in iter_results(out)}
    _RESULTS[name] = {"seconds": seconds[-1], "records": records}
    cell_s = sum(r["compute"]["wall_seconds"] for r in records.values()) / len(records)
    benchmark.extra_info.update({"cells": cells, "seconds": seconds[-1], "mean_cell_wall_s": cell_s,
                                 "torch_threads_per_worker": 1, "cores": available_cores()})


def test_one_worker_one_thread(benchmark: Any, suite_path: Path, tmp_path: Path, sizes: Sizes) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timed_run(benchmark, "one", suite_path, tmp_path / "out", Sequential(), sizes.cells)
    finally:
        torch.set_num_threads(threads)


def test_two_workers_one_thread_each(benchmark: Any, suite_path: Path, tmp_path: Path, sizes: Sizes) -> None:
    timed_run(benchmark, "two", suite_path, tmp_path / "out", LocalPool(workers=2, threads=1), sizes.cells)


def test_pool_speedup(benchmark: Any, tiny: bool, check_speed: bool, sizes: Sizes,
                      capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the two timed runs (file order): the records of both must be identical; the speed
    target is checked only under --benchmark-only."""
    if "one" not in _RESULTS or "two" not in _RESULTS:
        pytest.skip("the two timed runs did not both run (deselected or failed)")
    one, two = _RESULTS["one"], _RESULTS["two"]
    speedup: float = benchmark.pedantic(lambda: one["seconds"] / two["seconds"], rounds=1)
    benchmark.extra_info.update({"speedup": speedup, "cores": available_cores()})
    how = "TINY RUN (no --benchmark-only): not a measurement; " if tiny else ""
    with capsys.disabled():
        print(f"\nexecutor speed-up ({how}{sizes.cells} cells, {available_cores()} cores): 1 worker x 1 thread "
              f"{one['seconds']:.1f} s, 2 workers x 1 thread {two['seconds']:.1f} s (pool start included) = "
              f"{speedup:.2f}x; target >= {MIN_SPEEDUP}")

    assert len(one["records"]) == sizes.cells and sorted(one["records"]) == sorted(two["records"])
    for key, record in one["records"].items():
        assert essence(two["records"][key]) == essence(record), f"{key}: the pool's record differs"
    if not check_speed:
        return  # the speed target is checked only in the full-size benchmark run (--benchmark-only)
    if available_cores() < 2:
        pytest.skip(f"one core: two workers cannot be faster (measured {speedup:.2f}x)")
    assert speedup >= MIN_SPEEDUP, (
        f"2 workers took {two['seconds']:.1f} s against 1 worker's {one['seconds']:.1f} s: {speedup:.2f}x "
        f"(target >= {MIN_SPEEDUP})")
