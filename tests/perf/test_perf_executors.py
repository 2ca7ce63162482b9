"""Benchmark (pytest-benchmark): the local process pool's speed-up over one worker, with identical results.

What is measured
  * `test_one_worker_one_thread`: CELLS independent cells (real_only on toy_pockets with every training
    row, an MLP of two 384-unit layers, seeds 0..CELLS-1; a few seconds each on one core) run by the
    sequential executor in this process with `torch.set_num_threads(1)`: one worker of one thread.
  * `test_two_workers_one_thread_each`: the same cells with `LocalPool(workers=2, threads=1)`, timed end
    to end: the pool's start (two spawned interpreters importing torch and the plug-ins, a few seconds)
    counts, as it does for a user; this process has imported them already (a fixture), as a driver has
    by the time its first cell runs.
  * `test_pool_speedup` (runs last): one worker's seconds / two workers' seconds, asserted >= 1.6 on a
    machine with at least 2 idle cores, and the records of both runs identical (metrics, strategy logs
    without timings, config hashes). It asserts only under `--benchmark-only`, the benchmark run.

How to run (on an otherwise idle machine: the speed-up is measured against a second core)
  pytest tests/perf/test_perf_executors.py --benchmark-only -s
Plain test runs pass `--benchmark-skip`, which skips every test here (they are also marked `slow`).
"""
from __future__ import annotations

import time
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

pytestmark = pytest.mark.slow

CELLS = 32  # seeds 0..CELLS-1 of one strategy: independent cells of equal size
MIN_SPEEDUP = 1.6  # two workers of one thread against one worker of one thread, start of the pool included
SUITE = f"""
name: perf_executors
version: 1
primary_metric: accuracy
datasets: [toy_pockets]
budgets: [all]            # 2,000 training rows per class
val_per_class: 100
test_per_class: 500
model: {{name: mlp, params: {{hidden: [384, 384]}}}}
train: {{epochs: 25, batch_size: 64, lr: 1.0e-3}}
strategies: [real_only]
metrics: [accuracy, macro_f1, nll]
seeds: {list(range(CELLS))}
"""

# Filled by the two timed runs, read by test_pool_speedup: name -> {seconds, records}.
_RESULTS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite file, with this process warmed up as a long-lived driver is (plug-ins imported, the
    provenance read): the sequential run is not charged the imports that the pool's workers pay."""
    path = tmp_path_factory.mktemp("perf-executors") / "suite.yaml"
    path.write_text(SUITE)
    load_plugins()
    expand_cells(load_suite(str(path)))
    code_version(), package_versions()
    return path


def essence(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what may differ between executors: timings, provenance, hardware."""
    log = {k: v for k, v in record["strategy_log"].items() if not k.endswith("_seconds")}
    return {"config_hash": record["config_hash"], "status": record["status"], "metrics": record["metrics"],
            "strategy_log": log, "real_data": record.get("real_data")}


def timed_run(benchmark: Any, name: str, suite_path: Path, out: Path, executor: Executor) -> None:
    """One timed round of the whole suite into a fresh folder; the seconds and records go to _RESULTS."""
    suite = load_suite(str(suite_path))
    seconds: list[float] = []

    def run() -> None:
        t0 = time.perf_counter()
        summary = run_suite(suite, out, device="cpu", quiet=True, force=True, executor=executor)
        seconds.append(time.perf_counter() - t0)
        assert len(summary.done) == CELLS and not summary.failed

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    records = {str(p.relative_to(out)): r for p, r in iter_results(out)}
    _RESULTS[name] = {"seconds": seconds[-1], "records": records}
    cell_s = sum(r["compute"]["wall_seconds"] for r in records.values()) / len(records)
    benchmark.extra_info.update({"cells": CELLS, "seconds": seconds[-1], "mean_cell_wall_s": cell_s,
                                 "torch_threads_per_worker": 1, "cores": available_cores()})


def test_one_worker_one_thread(benchmark: Any, suite_path: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timed_run(benchmark, "one", suite_path, tmp_path / "out", Sequential())
    finally:
        torch.set_num_threads(threads)


def test_two_workers_one_thread_each(benchmark: Any, suite_path: Path, tmp_path: Path) -> None:
    timed_run(benchmark, "two", suite_path, tmp_path / "out", LocalPool(workers=2, threads=1))


def test_pool_speedup(benchmark: Any, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the two timed runs (file order). A speed target: checked only under --benchmark-only."""
    if not request.config.getoption("benchmark_only"):
        pytest.skip("the speed target is checked only in the benchmark run (--benchmark-only)")
    if "one" not in _RESULTS or "two" not in _RESULTS:
        pytest.skip("the two timed runs did not both run (deselected, failed or --benchmark-disable)")
    one, two = _RESULTS["one"], _RESULTS["two"]
    speedup: float = benchmark.pedantic(lambda: one["seconds"] / two["seconds"], rounds=1)
    benchmark.extra_info.update({"speedup": speedup, "cores": available_cores()})
    with capsys.disabled():
        print(f"\nexecutor speed-up ({CELLS} cells, {available_cores()} cores): 1 worker x 1 thread "
              f"{one['seconds']:.1f} s, 2 workers x 1 thread {two['seconds']:.1f} s (pool start included) = "
              f"{speedup:.2f}x; target >= {MIN_SPEEDUP}")

    assert sorted(one["records"]) == sorted(two["records"])
    for key, record in one["records"].items():
        assert essence(two["records"][key]) == essence(record), f"{key}: the pool's record differs"
    if available_cores() < 2:
        pytest.skip(f"one core: two workers cannot be faster (measured {speedup:.2f}x)")
    assert speedup >= MIN_SPEEDUP, (
        f"2 workers took {two['seconds']:.1f} s against 1 worker's {one['seconds']:.1f} s: {speedup:.2f}x "
        f"(target >= {MIN_SPEEDUP})")
