"""Executors (bench.executors): a local process pool and Ray give the sequential run's records, resume
as it does, and turn a worker that dies into error rows while the other cells finish; bad flags are
one-line errors."""
from __future__ import annotations

import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench import executors
from bench.api import StrategyResult
from bench.cells import expand_cells, load_dataset, run_cell
from bench.cli import main
from bench.config import load_suite
from bench.executors import LocalPool, RayExecutor, Sequential, group_cells, make_executor
from bench.registry import STRATEGIES
from bench.results import iter_results, validate_result
from bench.runner import run_suite
from bench.task import Task

# A vector suite whose cells take a fraction of a second: toy_pockets, an MLP, few epochs. Two strategies
# sample one fitted generator (pca_gmm), so they form one Ray task per seed.
SUITE = """
name: exec
version: 1
primary_metric: accuracy
datasets: [{{name: toy_pockets, params: {{train_per_class: 300, test_per_class: 100}}}}]
budgets: [20]
val_per_class: 20
model: {{name: mlp, params: {{hidden: [16]}}}}
train: {{epochs: 15, batch_size: 32, lr: 1.0e-2}}
synthetic:
  generator: {{name: pca_gmm, params: {{components: 2, mixtures: 2}}}}
  budget_per_class: 20
  mix_ratio: 0.5
strategies: {strategies}
metrics: [accuracy, macro_f1, nll]
seeds: [0, 1]
"""
GRID = ("[real_only, smote, {name: random_synthetic, params: {passes: 5, max_rounds: 2, round_epochs: 5}},"
        " {name: active_synthesis, params: {passes: 5, max_rounds: 2, round_epochs: 5}}]")
RAY_MISSING = "Ray is not installed: pip install 'active-synthesis-bench[ray]'"


def suite_file(tmp_path: Path, strategies: str = GRID) -> Path:
    path = tmp_path / "exec.yaml"
    path.write_text(SUITE.format(strategies=strategies))
    return path


def essence(record: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the executor: everything but timings, cache hits and provenance."""

    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if not (k.endswith("_seconds") or k == "cached")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    keys = ("config_hash", "config", "cell", "status", "metrics", "real_data", "predicted_classes", "degenerate")
    return {**{k: record.get(k) for k in keys}, "strategy_log": strip(record["strategy_log"]),
            "error": record["error"] and record["error"]["type"]}


def records(root: Path) -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(root)): r for p, r in iter_results(root)}


# --- plug-ins registered by the tests (module level, so that workers can unpickle them) -----------------


def _real_only(task: Task) -> StrategyResult:
    return STRATEGIES.build("real_only", {}).run(task)


@dataclass
class ExitOnSeed0:
    """Ends its process with os._exit(1) on seed 0 (a crash no `except` can catch); else real_only.
    With `wait_for`, it first waits (up to 60 s) until that file exists, so that a test can order the crash."""

    wait_for: str = ""

    def run(self, task: Task) -> StrategyResult:
        if task.seed == 0:
            deadline = time.monotonic() + 60
            while self.wait_for and not os.path.exists(self.wait_for) and time.monotonic() < deadline:
                time.sleep(0.05)
            os._exit(1)
        return _real_only(task)


@dataclass
class KilledOnSeed0:
    """Kills its own process with SIGKILL on seed 0 (as the out-of-memory killer does); else real_only."""

    def run(self, task: Task) -> StrategyResult:
        if task.seed == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return _real_only(task)


@dataclass
class GlobalRandom:
    """Predicts from Python's, numpy's and torch's global generators (as careless third-party code does)."""

    def run(self, task: Task) -> StrategyResult:
        noise = float(torch.rand(1)) + random.random() + float(np.random.rand())

        class Noisy:
            def predict_proba(self, x: Any) -> np.ndarray:
                p = np.full((len(x), task.num_classes), 1.0)
                p[:, 0] += noise
                return p / p.sum(1, keepdims=True)

        return StrategyResult(Noisy(), log={"noise": noise})


@pytest.fixture(scope="module", autouse=True)
def test_strategies():
    names = {"exit_on_seed0": ExitOnSeed0, "killed_on_seed0": KilledOnSeed0, "global_random": GlobalRandom}
    for name, cls in names.items():  # the crashing ones claim the shared generator: they share a Ray task
        shared = {"synthesises": True, "uses_generator": True} if "seed0" in name else {}
        STRATEGIES.register(name, kind="baseline", **shared)(cls)
    yield
    for name in names:
        STRATEGIES._entries.pop(name, None)
        STRATEGIES._meta.pop(name, None)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The suite run one cell after another in this process, on one thread: the reference."""
    tmp = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_suite(load_suite(str(suite_file(tmp))), tmp / "out", device="cpu", quiet=True)
    finally:
        torch.set_num_threads(threads)
    assert len(summary.done) == 8 and not summary.failed
    return suite_file(tmp), {k: essence(r) for k, r in records(tmp / "out").items()}


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-CPU Ray instance on this machine, started by the test. This module's classes travel by
    value (Ray workers cannot import a test module)."""
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20, log_to_driver=False)
    yield ray
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(module)


def check_same_and_resume(out: Path, suite: Path, reference: dict[str, dict[str, Any]], executor: Any) -> None:
    """`out` holds the executor's run of `suite`: the reference's records; a rerun skips every cell, and
    one removed result is the only cell computed again."""
    got = records(out)
    assert sorted(got) == sorted(reference)
    for key, record in got.items():
        validate_result(record)
        assert essence(record) == reference[key], key
        assert record["hardware"]["torch_threads"] == 1
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("seed*.json")}
    summary = run_suite(load_suite(str(suite)), out, device="cpu", quiet=True, executor=executor)
    assert (len(summary.done), len(summary.skipped)) == (0, 8)
    removed = sorted(stamps)[3]
    removed.unlink()
    summary = run_suite(load_suite(str(suite)), out, device="cpu", quiet=True, executor=executor)
    assert summary.done == [removed] and len(summary.skipped) == 7
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != removed)
    assert essence(records(out)[str(removed.relative_to(out))]) == reference[str(removed.relative_to(out))]


def test_a_local_pool_writes_the_sequential_records_and_resumes(tmp_path, sequential):
    suite, reference = sequential
    pool = LocalPool(workers=2, threads=1)
    summary = run_suite(load_suite(str(suite)), tmp_path / "out", device="cpu", quiet=True, executor=pool)
    assert len(summary.done) == 8 and not summary.failed
    check_same_and_resume(tmp_path / "out", suite, reference, pool)


def test_ray_writes_the_sequential_records_and_resumes(tmp_path, sequential, ray_cluster):
    suite, reference = sequential
    ray = RayExecutor(cpus_per_cell=1)
    summary = run_suite(load_suite(str(suite)), tmp_path / "out", device="cpu", quiet=True, executor=ray)
    assert len(summary.done) == 8 and not summary.failed
    check_same_and_resume(tmp_path / "out", suite, reference, ray)


def test_cells_sharing_a_generator_form_one_ray_task(tmp_path):
    suite = load_suite(str(suite_file(tmp_path)))
    cells = expand_cells(suite)
    labels = [[f"{cells[i].strategy.key}/{cells[i].seed}" for i in g] for g in group_cells(suite, cells)]
    assert labels == [["real_only/0"], ["real_only/1"], ["smote/0"], ["smote/1"],
                      ["random_synthetic/0", "active_synthesis/0"], ["random_synthetic/1", "active_synthesis/1"]]


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_worker_that_dies_becomes_an_error_row_and_the_run_goes_on(tmp_path, capsys, request, executor):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    crash = "exit_on_seed0" if executor == "local" else "killed_on_seed0"
    # Seeds 0 and 1: other cells run beside the crashing one (on Ray, random_synthetic shares its task and
    # runs after it), and the crashing strategy's seed 1 finishes.
    suite = suite_file(tmp_path, f"[{crash}, real_only, {{name: random_synthetic, params: {{max_rounds: 1}}}}]")
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--device", "cpu",
                 "--executor", executor, "--workers", "2"]) == 1
    assert "5 done, 0 up to date, 1 failed" in capsys.readouterr().out
    got = records(out)
    dead = got[f"exec/v1/cpu/toy_pockets/n20/{crash}/seed0.json"]
    validate_result(dead)
    assert dead["status"] == "error"
    assert dead["error"]["type"] == {"local": "BrokenProcessPool", "ray": "WorkerCrashedError"}[executor]
    assert "died" in dead["error"]["message"]
    assert dead["config_hash"] == expand_cells(load_suite(str(suite)))[0].hash
    others = [r for r in got.values() if r is not dead]
    assert len(others) == 5 and all(r["status"] == "ok" for r in others)


class PoolThatBreaksBeforeItsThirdTask(executors.ProcessPoolExecutor):
    """A process pool whose third submission first lets the crashing cell go (it waits for the file
    `go`) and waits until the pool has broken: the worker dies after the driver's wait has returned
    another cell's record and before its next submission, which then raises BrokenProcessPool."""

    go = Path("go")  # set by the test
    submissions = 0
    raced = False

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        cls = type(self)
        cls.submissions += 1
        if cls.submissions == 3:
            cls.go.touch()
            deadline = time.monotonic() + 60
            while not self._broken and time.monotonic() < deadline:  # CPython's flag: a worker died
                time.sleep(0.05)
            cls.raced = bool(self._broken)
        return super().submit(*args, **kwargs)


def test_a_worker_that_dies_between_two_submissions_is_an_error_row_and_the_run_goes_on(tmp_path, capsys,
                                                                                      monkeypatch):
    pool = PoolThatBreaksBeforeItsThirdTask
    for name, value in (("go", tmp_path / "go"), ("submissions", 0), ("raced", False)):
        monkeypatch.setattr(pool, name, value)
    monkeypatch.setattr(executors, "ProcessPoolExecutor", pool)
    # Cells in order: exit_on_seed0 seed 0 (waits for `go`, then dies), seed 1 (finishes first), real_only x2.
    suite = suite_file(tmp_path, f"[{{name: exit_on_seed0, params: {{wait_for: '{tmp_path / 'go'}'}}}}, real_only]")
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--device", "cpu",
                 "--executor", "local", "--workers", "2"]) == 1
    assert pool.raced  # the third submission met a broken pool
    assert "3 done, 0 up to date, 1 failed" in capsys.readouterr().out
    status = {p.split("/")[-2] + "/" + p.split("/")[-1]: (r["status"], r["error"] and r["error"]["type"])
              for p, r in records(out).items()}
    assert status == {"exit_on_seed0/seed0.json": ("error", "BrokenProcessPool"),
                      "exit_on_seed0/seed1.json": ("ok", None),
                      "real_only/seed0.json": ("ok", None), "real_only/seed1.json": ("ok", None)}


class PoolBrokenBeforeItsFirstTask(executors.ProcessPoolExecutor):
    """The first pool of a run is broken before its first submission (a worker that died idle); the
    pools after it work."""

    pools = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        PoolBrokenBeforeItsFirstTask.pools += 1
        self.broken_from_the_start = PoolBrokenBeforeItsFirstTask.pools == 1

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken_from_the_start:
            raise executors.BrokenProcessPool("a child process terminated abruptly")
        return super().submit(*args, **kwargs)


def test_a_pool_broken_with_no_cell_in_flight_is_replaced(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(PoolBrokenBeforeItsFirstTask, "pools", 0)
    monkeypatch.setattr(executors, "ProcessPoolExecutor", PoolBrokenBeforeItsFirstTask)
    suite = suite_file(tmp_path, "[real_only]")
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu",
                 "--executor", "local", "--workers", "2"]) == 0
    assert "2 done, 0 up to date, 0 failed" in capsys.readouterr().out
    assert PoolBrokenBeforeItsFirstTask.pools == 2


def test_a_cell_does_not_depend_on_the_global_generators_it_finds(tmp_path):
    suite = load_suite(str(suite_file(tmp_path, "[global_random]")))
    cell = expand_cells(suite)[0]
    data = load_dataset(cell.dataset, None)
    results = []
    for state in (1, 2):  # what earlier cells in the same process left behind
        random.seed(state)
        np.random.seed(state)
        torch.manual_seed(state)
        record = run_cell(suite, cell, data, torch.device("cpu"))
        results.append((record["strategy_log"]["noise"], record["metrics"]))
    assert results[0] == results[1]


def test_sequential_is_the_default_and_workers_1_is_sequential():
    assert isinstance(make_executor(), Sequential)
    assert isinstance(make_executor("local", workers=1), Sequential)
    pool = make_executor("local", workers=3)
    assert isinstance(pool, LocalPool) and pool.threads_per_worker() >= 1


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers takes a whole number >= 1, got '0'"),
    (["--workers", "two"], "--workers takes a whole number >= 1, got 'two'"),
    (["--address", "auto"], "--address applies to --executor ray only"),
    (["--gpus-per-cell", "0.5"], "--gpus-per-cell applies to --executor ray only"),
    (["--cpus-per-cell", "2"], "--cpus-per-cell applies to --executor ray only"),
    (["--executor", "spark"], "argument --executor: invalid choice: 'spark'"),
    (["--executor", "ray", "--cpus-per-cell", "0"], "--cpus-per-cell takes a positive number of CPUs, got '0'"),
    (["--executor", "ray", "--gpus-per-cell", "-1"], "--gpus-per-cell takes a number of GPUs >= 0, got '-1'"),
])
def test_bad_executor_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    suite = suite_file(tmp_path)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--gpus-per-cell", "1.5"], "--gpus-per-cell takes a fraction of one GPU (e.g. 0.5) or a whole number"),
    (["--address", "not an address"], "--address takes auto or HOST:PORT"),
    (["--device", "cuda"], "--device cuda with --executor ray needs --gpus-per-cell > 0"),
])
def test_bad_ray_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    pytest.importorskip("ray", reason=RAY_MISSING)
    suite = suite_file(tmp_path)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--executor", "ray",
                 *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and message in err and err.count("\n") == 1


def test_a_cell_no_ray_node_can_hold_is_a_one_line_error(tmp_path, capsys, ray_cluster):
    suite = suite_file(tmp_path)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet", "--executor", "ray",
                 "--gpus-per-cell", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("bench: error: no node of the Ray cluster has 1 CPU and 1 GPU for a cell (--cpus-per-cell, "
                   "--gpus-per-cell); its nodes have: 2 CPU, 0 GPU\n")
    assert ray_cluster.is_initialized()  # the test's cluster: joined, not shut down


def test_ray_without_ray_installed_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    suite = suite_file(tmp_path)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err == ("bench: error: --executor ray needs Ray, which is not installed: "
                   "pip install 'active-synthesis-bench[ray]'\n")
