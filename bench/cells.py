"""Cells, and the one function that runs one: a suite expands into cells (one per data set, budget,
strategy and seed, each with the resolved config whose hash decides whether its result is up to date),
and `run_cell` turns a cell and its loaded data into a result record (status ok, or error with its
message: an error result is a result). The runner (bench.runner) decides which cells are pending and
writes their records; the executors (bench.executors) decide where `run_cell` runs. Both import this
module, and it imports neither."""
from __future__ import annotations

import datetime as dt
import random
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench import __version__, artifacts
from bench.api import DatasetSplits, EvalContext
from bench.compat import check_suite
from bench.compute import ComputeMeter
from bench.config import KeyedSpec, NamedSpec, SuiteConfig, config_hash
from bench.environment import code_version, hardware, package_versions
from bench.errors import BenchError
from bench.evaluation import check_metric_params, evaluate
from bench.registry import DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES, param_record
from bench.results import SCHEMA_VERSION, encode_result, json_safe
from bench.task import Task
from bench.timeout import CellTimeout, time_limit


@dataclass
class Cell:
    """One (data set, budget, strategy, seed) of a suite, with the config its result records."""

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
        generator = {"name": gen.name, "params": param_record(GENERATORS.build(gen.name, gen.params)),
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
                    # What the strategy uses: its own budget_per_class and mix_ratio where it sets them
                    # (SynthesisStrategy), else the suite's; a strategy that sets neither records the suite's.
                    own_budget = getattr(strategy, "budget_per_class", None)
                    own_mix = getattr(strategy, "mix_ratio", None)
                    synthetic = {
                        "budget_per_class": suite.synthetic.budget_per_class if own_budget is None else own_budget,
                        "mix_ratio": suite.synthetic.mix_ratio if own_mix is None else own_mix,
                        "generator": generator if caps.uses_generator else None,
                    }
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
                        "model": {"name": suite.model.name, "params": param_record(model)},
                        "train": suite.train.model_dump(),
                        "strategy": {"id": spec.key, "name": spec.name, "params": param_record(strategy)},
                        "synthetic": synthetic,
                        "metrics": suite.metric_record(),
                        "versions": versions,
                        "seed": seed,
                    }
                    cells.append(Cell(ds, budget, spec, seed, config))
    return cells


def data_key(cell: Cell) -> str:
    """Cells with the same key use the same loaded data set (its name and parameters)."""
    return repr(cell.config["dataset"])


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
                # The strategy sees its view of the task (bench.task.StrategyView): no test split, and the
                # pool's labels only if it declares reads_pool_labels, which its result then says.
                caps = STRATEGIES.caps(cell.strategy.name)
                record["reads_pool_labels"] = caps.reads_pool_labels
                strategy = STRATEGIES.build(cell.strategy.name, cell.strategy.params)
                result = strategy.run(task.for_strategy(caps))
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
    record["compute"].update(_charged(record))
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


def _charged(record: dict[str, Any]) -> dict[str, float]:
    """The cell's CPU seconds with the suite's shared generator charged in full, whether this cell fitted it
    or read it from the cache (strategy_log.generator's fit_cpu_seconds): every strategy that samples one
    generator pays for it alike, whichever ran first. A generator's pretraining (pretrain_cpu_seconds: once
    per data set and setting, shared by every seed and budget) is charged to none of them, the cell that ran
    it included, and recorded apart as generator_pretrain_cpu_seconds (bench.generator says why). Empty for a
    cell that samples none."""
    fit = (record.get("strategy_log") or {}).get("generator") or {}
    cost = fit.get("fit_cpu_seconds")
    if not isinstance(cost, (int, float)) or isinstance(cost, bool):
        return {}
    cpu = record["compute"]["cpu_seconds"] - (0.0 if fit.get("cached") else float(cost))  # the cell's own work
    out = {"generator_fit_cpu_seconds": float(cost)}
    pre = fit.get("pretrain_cpu_seconds")
    if isinstance(pre, (int, float)) and not isinstance(pre, bool):
        out["generator_pretrain_cpu_seconds"] = float(pre)
        cpu -= 0.0 if fit.get("pretrain_cached", True) else float(pre)  # ran in this cell: not its own work
    return {**out, "charged_cpu_seconds": max(0.0, cpu) + float(cost)}


def _fail(record: dict[str, Any], kind: str, message: str) -> None:
    """Turn `record` into an error result (called in an except block: the traceback is the current one)."""
    record["status"] = "error"
    record["error"] = {"type": kind, "message": message.strip().splitlines()[0] if message.strip() else "",
                       "traceback": traceback.format_exc()}
