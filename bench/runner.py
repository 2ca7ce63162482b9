"""Expands a suite into cells and runs them: one result JSON per (dataset, budget, strategy, seed),
skipping cells whose result already exists with the same config hash (so an interrupted run
resumes where it stopped); `force` recomputes. A cell that raises is written as an error result
with its partial timings, and the grid goes on. Where the cells run (in this process, a local process
pool, a Ray cluster) is an executor's business (bench.executors); every executor runs a cell through
`run_cell`, and the records are written here, in the driver."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import __version__, artifacts
from bench.compat import check_suite
from bench.compute import ComputeMeter
from bench.config import KeyedSpec, NamedSpec, SuiteConfig, config_hash
from bench.data import DatasetSplits
from bench.environment import code_version, hardware, package_versions
from bench.errors import BenchError
from bench.evaluation import EvalContext, check_metric_params, evaluate
from bench.executors import Executor, Job, Sequential
from bench.progress import Progress
from bench.registry import DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES
from bench.results import (
    SCHEMA_VERSION,
    TEMP_PREFIX,
    cell_path,
    clean_stale_temp_files,
    encode_result,
    json_safe,
    read_valid_result,
    save_fallback,
    write_result,
)
from bench.task import Task
from bench.timeout import CellTimeout, time_limit


@dataclass
class Cell:
    dataset: NamedSpec
    budget: int | str  # n per class, "all" or "P%"
    strategy: KeyedSpec
    seed: int
    config: dict[str, Any]

    @property
    def hash(self) -> str:
        return config_hash(self.config)

    def label(self) -> str:
        return f"{self.dataset.name} n={self.budget} {self.strategy.key} seed={self.seed}"


@dataclass
class RunSummary:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    unsaved: list[Path] = field(default_factory=list)  # records saved elsewhere because their cell path failed
    stopped: str | None = None  # why the run stopped before its last cell (nothing could be saved)


def expand_cells(suite: SuiteConfig) -> list[Cell]:
    """Every (dataset, budget, strategy, seed) of the suite with its resolved config. Builds each
    component once and checks that they work together (bench.compat), so that unknown names, bad
    parameters and incompatible combinations fail before any work starts.

    A cell's config holds exactly what the cell uses, each component with its version: the synthetic
    generator only for strategies that sample it, the synthetic budget and mix only for strategies that
    synthesise. Its hash therefore changes when, and only when, something the cell depends on does."""
    for spec in suite.metrics:
        check_metric_params(spec.name, spec.params)
    if suite.primary_metric not in suite.metric_keys:
        raise BenchError(f"primary_metric {suite.primary_metric!r} is not among the suite's metrics")
    for ds in suite.datasets:
        DATASETS.build(ds.name, ds.params)  # only stores its parameters: a bad one fails here
    model = MODELS.build(suite.model.name, suite.model.params)
    strategies = [(s, STRATEGIES.build(s.name, s.params)) for s in suite.strategies]
    generator = None
    if suite.synthetic is not None:
        gen = suite.synthetic.generator
        generator = {"name": gen.name, "params": _params(GENERATORS.build(gen.name, gen.params)),
                     "version": GENERATORS.caps(gen.name).version}
    check_suite(suite, strategies)
    metrics = {m.key: METRICS.caps(m.name).version for m in suite.metrics}
    cells = []
    for ds in suite.datasets:
        for budget in suite.budgets:
            for spec, strategy in strategies:
                caps = STRATEGIES.caps(spec.name)
                synthetic = None
                if caps.synthesises:
                    own = getattr(strategy, "budget_per_class", None)  # a strategy's override (SynthesisStrategy)
                    synthetic = {"budget_per_class": suite.synthetic.budget_per_class if own is None else own,
                                 "mix_ratio": suite.synthetic.mix_ratio,
                                 "generator": generator if caps.uses_generator else None}
                versions = {"dataset": DATASETS.caps(ds.name).version, "model": MODELS.caps(suite.model.name).version,
                            "strategy": caps.version, "metrics": metrics}
                if caps.own_generator is not None:
                    versions["own_generator"] = GENERATORS.caps(caps.own_generator).version
                for seed in suite.seeds:
                    config = {
                        "suite": {"name": suite.name, "version": suite.version, "preset": suite.preset},
                        "dataset": ds.model_dump(),
                        "budget": budget,
                        "val_per_class": suite.val_per_class,
                        "test_per_class": suite.test_per_class,
                        "model": {"name": suite.model.name, "params": _params(model)},
                        "train": suite.train.model_dump(),
                        "strategy": {"id": spec.key, "name": spec.name, "params": _params(strategy)},
                        "synthetic": synthetic,
                        "metrics": suite.metric_record(),
                        "versions": versions,
                        "seed": seed,
                    }
                    cells.append(Cell(ds, budget, spec, seed, config))
    return cells


def _params(obj: Any) -> dict[str, Any]:
    """A component's parameter record; fields marked omit_if_none are left out while None."""
    if not dataclasses.is_dataclass(obj):
        return dict(vars(obj))
    record = dataclasses.asdict(obj)
    for f in dataclasses.fields(obj):
        if f.metadata.get("omit_if_none") and record.get(f.name) is None:
            del record[f.name]
    return record


def check_model_path(suite: SuiteConfig) -> None:
    """A generator that loads local weights needs their folder before any cell starts (a suite file may
    leave it to the command line, so `bench validate` does not ask for it)."""
    gen = suite.synthetic.generator if suite.synthetic is not None else None
    if gen is not None and GENERATORS.caps(gen.name).needs_model_path and not gen.params.get("model_path"):
        raise BenchError(f"generator {gen.name!r} loads local weights: pass --sd-path FOLDER (a diffusers "
                         "model folder) or set synthetic.generator.params.model_path in the suite")
    if gen is not None and gen.params.get("model_path") and not Path(gen.params["model_path"]).expanduser().is_dir():
        raise BenchError(f"generator {gen.name!r}: model folder {gen.params['model_path']} does not exist")


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=f"{TEMP_PREFIX}write-test-"):
            pass
    except OSError as exc:
        raise BenchError(f"output folder {out} is not writable: {exc.strerror or exc}") from None


def run_suite(suite: SuiteConfig, out: Path, device: str = "auto", force: bool = False, quiet: bool = False,
              data_dir: str | None = None, cell_timeout: float | None = None,
              executor: Executor | None = None) -> RunSummary:
    """Run the suite's pending cells into `out` with `executor` (default: one after another in this
    process). `cell_timeout` (seconds) overrides the suite's limit. A record that cannot be written to its
    cell path (a full disk, a folder in its place) is saved by `save_fallback`, the cell counts as failed
    and the run goes on; if it cannot be saved anywhere, the run stops (`RunSummary.stopped`)."""
    out = Path(out)
    executor = Sequential() if executor is None else executor
    executor.check(device)
    cells = expand_cells(suite)
    check_model_path(suite)
    check_writable(out)
    clean_stale_temp_files(out)  # left behind by a killed run
    timeout = cell_timeout if cell_timeout is not None else suite.cell_timeout
    summary = RunSummary()
    paths = [cell_path(out, suite.name, suite.version, suite.preset, c.dataset.name, c.budget, c.strategy.key, c.seed) for c in cells]
    pending = [force or not _up_to_date(path, cell.hash) for cell, path in zip(cells, paths)]
    # Load the data before the first cell starts, so that a missing or damaged data set stops the
    # run at once with its own error (each data set once per run, only if some cell still needs it).
    loaded: dict[str, DatasetSplits] = {}
    for cell, todo in zip(cells, pending):
        if todo and data_key(cell) not in loaded:
            loaded[data_key(cell)] = load_dataset(cell.dataset, data_dir)
    todo = [(cell, path) for cell, path, p in zip(cells, paths, pending) if p]
    job = Job(suite=suite, device=device, timeout=timeout, data_dir=data_dir, quiet=quiet)
    with Progress(quiet) as progress, progress.task(f"{suite.name} [{suite.preset}]", total=len(cells)) as bar:
        for cell, path, p in zip(cells, paths, pending):
            if not p:
                summary.skipped.append(path)
                bar.advance(status=f"up to date: {cell.label()}")
        # Records arrive as cells finish (in any order under a parallel executor); each is written at once.
        with contextlib.closing(executor.run(job, [cell for cell, _ in todo], loaded)) as records:
            for i, record in records:
                cell, path = todo[i]
                try:
                    write_result(path, record)
                except (OSError, BenchError) as exc:  # the cell is computed: keep its record somewhere
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    summary.failed.append(path)
                    saved = save_fallback(out, path, record)
                    if saved is None:
                        summary.stopped = (f"cannot write {path} ({reason}) and cannot save the record anywhere "
                                           "else (is the disk full?); stopped before the remaining cells")
                        break
                    summary.unsaved.append(saved)
                    print(f"bench: warning: cannot write {path} ({reason}); its {record['status']} record is saved "
                          f"in {saved}", file=sys.stderr)
                    bar.advance(status=f"{cell.label()}: not written")
                    continue
                (summary.done if record["status"] == "ok" else summary.failed).append(path)
                if record["status"] != "ok":
                    progress.log(f"[red]error[/red] in {cell.label()}: {record['error']['message']}")
                bar.advance(status=f"{cell.label()}: {record['status']}")
    return summary


def data_key(cell: Cell) -> str:
    """Cells with the same key use the same loaded data set (its name and parameters)."""
    return repr(cell.config["dataset"])


def _up_to_date(path: Path, digest: str) -> bool:
    """A finished (status ok) result with the same config hash; error results are retried."""
    if not path.is_file():
        return False
    try:
        record = read_valid_result(path)  # a damaged or schema-invalid file is recomputed
    except BenchError:
        return False
    return record["config_hash"] == digest and record["status"] == "ok"


def load_dataset(spec: NamedSpec, data_dir: str | None) -> DatasetSplits:
    return DATASETS.build(spec.name, {**spec.params, "data_dir": data_dir}).load()


def run_cell(suite: SuiteConfig, cell: Cell, data: DatasetSplits, device: torch.device, quiet: bool = True,
             timeout: float | None = None) -> dict[str, Any]:
    """Run one cell and return its result record (status ok or error). Whatever the strategy does (raise,
    call sys.exit(), run past `timeout` seconds, log what JSON cannot hold), the record is a valid result;
    only KeyboardInterrupt stops the run."""
    record = _new_record(suite, cell)
    phases: dict[str, float] = {}
    meter = ComputeMeter(device)
    with meter:
        try:
            with time_limit(timeout):
                # The global generators, for third-party code that draws from them: seeded here, a cell's result
                # does not depend on what ran before it in this process (executors run cells in any order).
                random.seed(cell.seed)
                np.random.seed(cell.seed)
                torch.manual_seed(cell.seed)
                task = Task.build(data, cell.budget, suite.val_per_class, cell.seed, suite.model, suite.train,
                                  test_per_class=suite.test_per_class, synthetic=suite.synthetic,
                                  device=str(device), quiet=quiet)
                # Which real examples the cell trained on: strategies of one seed must agree (paired tests).
                record["real_data"] = {"fingerprint": task.real_fingerprint, "train_examples": len(task.train),
                                       "val_examples": len(task.val), "test_examples": len(task.test)}
                strategy = STRATEGIES.build(cell.strategy.name, cell.strategy.params)
                result = strategy.run(task)
                # A log that JSON cannot hold (a set, an object) is an error naming its key, found before the
                # evaluation rather than when the record is written.
                log = json_safe(result.log, "strategy_log")
                if not isinstance(log, dict):
                    raise TypeError(f"strategy_log must be a mapping, got {type(result.log).__name__}")
                phases["strategy_seconds"] = meter.record()["wall_seconds"]
                # float64, as EvalContext promises: the same numbers a later `bench rescore` reads back
                # from the cell's artifacts (bench.artifacts.stored_probs keeps them exactly).
                probs = np.asarray(result.classifier.predict_proba(task.test.x), dtype=np.float64)
                # A model that predicts a single class everywhere (a near-constant network) is flagged in every
                # result: its "robustness" or "fairness" would otherwise pass for a real score.
                record["predicted_classes"] = int(len(np.unique(np.asarray(probs).argmax(axis=1))))
                record["degenerate"] = record["predicted_classes"] <= 1
                ctx = EvalContext(task=task, classifier=result.classifier, y_true=task.test.y, probs=probs,
                                  synthetic=result.synthetic)
                record["metrics"] = evaluate(suite.metrics, ctx)
                record["strategy_log"] = log
                # Test probabilities and a sample (or, with keep_synthetic, all) of the synthetic data, written
                # beside the result by write_result, so that metrics can be recomputed without retraining.
                record[artifacts.PAYLOAD] = artifacts.collect(probs, result.synthetic, task.data.modality,
                                                              task.data.classes, cell.seed, suite.keep_synthetic)
                phases["evaluation_seconds"] = meter.record()["wall_seconds"] - phases["strategy_seconds"]
        except CellTimeout as exc:
            _fail(record, "Timeout", str(exc))
        except SystemExit as exc:  # a plug-in's sys.exit() must not end the run silently
            _fail(record, "SystemExit", f"the strategy called sys.exit({exc.code!r})")
        except Exception as exc:  # an error result is a result: never drop a failed cell
            _fail(record, type(exc).__name__, str(exc))
    record["compute"] = {**meter.record(), "phases": phases}
    record["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        encode_result(record)
    except BenchError as exc:  # e.g. a metric value that JSON cannot hold: the record says so instead
        record.update(metrics={}, strategy_log={})
        _fail(record, "InvalidResult", str(exc))
    if record["status"] != "ok":  # an error result has no artifacts (e.g. a timeout after they were collected)
        record.pop(artifacts.PAYLOAD, None)
    return record


def _new_record(suite: SuiteConfig, cell: Cell) -> dict[str, Any]:
    """A cell's record before it runs: status ok, no metrics yet, and this process's provenance."""
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": suite.name, "version": suite.version, "preset": suite.preset, "primary_metric": suite.primary_metric},
        "cell": {"dataset": cell.dataset.name, "budget": cell.budget, "strategy": cell.strategy.key, "seed": cell.seed},
        "config": cell.config,
        "config_hash": cell.hash,
        "status": "ok",
        "error": None,
        "metrics": {},
        "strategy_log": {},
        "compute": {},
        "code": {**code_version(), "package_version": __version__},
        "packages": package_versions(),
        "hardware": hardware(),
        "created_at": "",
    }


def error_record(suite: SuiteConfig, cell: Cell, kind: str, message: str, device: str = "cpu",
                 wall_seconds: float = 0.0, detail: str = "") -> dict[str, Any]:
    """The error result of a cell that produced no record of its own (its worker died, or could not load
    the suite's plug-ins): the format of run_cell's error rows, `kind` as error.type. Its provenance is
    this process's, and its compute is what this process saw: `wall_seconds` until the failure; the
    CPU time and memory of a dead worker are unknown and recorded as 0."""
    record = _new_record(suite, cell)
    record["status"] = "error"
    lines = message.strip().splitlines()
    record["error"] = {"type": kind, "message": lines[0] if lines else "", "traceback": detail}
    record["compute"] = {"wall_seconds": max(0.0, wall_seconds), "cpu_seconds": 0.0, "cpu_hours": 0.0,
                         "peak_rss_bytes": 0, "peak_rss_scope": "process", "device": device,
                         "gpu_peak_memory_bytes": None, "gpu_hours": None, "phases": {}}
    record["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return record


def _fail(record: dict[str, Any], kind: str, message: str) -> None:
    """Turn `record` into an error result (called in an except block: the traceback is the current one)."""
    record["status"] = "error"
    record["error"] = {"type": kind, "message": message.strip().splitlines()[0] if message.strip() else "",
                       "traceback": traceback.format_exc()}
