"""Expands a suite into cells and runs them: one result JSON per (dataset, budget, strategy, seed),
skipping cells whose result already exists with the same config hash (so an interrupted run
resumes where it stopped); `force` recomputes. A cell that raises is written as an error result
with its partial timings, and the grid goes on."""
from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import __version__
from bench.compute import ComputeMeter
from bench.config import KeyedSpec, NamedSpec, SuiteConfig, config_hash
from bench.data import DatasetSplits
from bench.environment import code_version, hardware, package_versions
from bench.errors import BenchError
from bench.evaluation import EvalContext, check_metric_params, check_metrics, evaluate
from bench.generator import build_generator
from bench.progress import Progress
from bench.registry import DATASETS, GENERATORS, STRATEGIES
from bench.results import SCHEMA_VERSION, cell_path, read_result, write_result
from bench.strategy import build_strategy
from bench.task import Task, build_model_spec


@dataclass
class Cell:
    dataset: NamedSpec
    budget: int
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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BenchError(f"device {device!r} was asked for but torch sees no CUDA device")
        return torch.device(device)
    if device != "cpu":
        raise BenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def expand_cells(suite: SuiteConfig) -> list[Cell]:
    """Every (dataset, budget, strategy, seed) of the suite with its resolved config; builds each
    component once so that unknown names and bad parameters fail before any work starts."""
    for spec in suite.metrics:
        check_metric_params(spec.name, spec.params)
    if suite.primary_metric not in suite.metric_keys:
        raise BenchError(f"primary_metric {suite.primary_metric!r} is not among the suite's metrics")
    model = build_model_spec(suite.model)
    strategies = [(s, build_strategy(s.name, s.params)) for s in suite.strategies]
    for s, _ in strategies:
        if STRATEGIES.meta(s.name).get("synthetic") and suite.synthetic is None:
            raise BenchError(f"strategy {s.key!r} synthesises data: the suite needs a `synthetic:` section "
                             "(generator, budget_per_class, mix_ratio)")
    if suite.synthetic is not None:
        build_generator(suite.synthetic.generator.name, suite.synthetic.generator.params)
    cells = []
    for ds in suite.datasets:
        DATASETS.get(ds.name)
        check_metrics([m.name for m in suite.metrics], DATASETS.meta(ds.name).get("modality", ""))
        for budget in suite.budgets:
            for spec, strategy in strategies:
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
                        # Only strategies that synthesise depend on the synthetic settings.
                        "synthetic": suite.synthetic.model_dump() if STRATEGIES.meta(spec.name).get("synthetic") else None,
                        "metrics": suite.metric_record(),
                        "seed": seed,
                    }
                    cells.append(Cell(ds, budget, spec, seed, config))
    return cells


def _params(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(vars(obj))


def check_model_path(suite: SuiteConfig) -> None:
    """A generator that loads local weights needs their folder before any cell starts (a suite file may
    leave it to the command line, so `bench validate` does not ask for it)."""
    gen = suite.synthetic.generator if suite.synthetic is not None else None
    if gen is not None and GENERATORS.meta(gen.name).get("needs_model_path") and not gen.params.get("model_path"):
        raise BenchError(f"generator {gen.name!r} loads local weights: pass --sd-path FOLDER (a diffusers "
                         "model folder) or set synthetic.generator.params.model_path in the suite")
    if gen is not None and gen.params.get("model_path") and not Path(gen.params["model_path"]).expanduser().is_dir():
        raise BenchError(f"generator {gen.name!r}: model folder {gen.params['model_path']} does not exist")


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BenchError(f"output folder {out} is not writable: {exc.strerror or exc}") from None


def run_suite(suite: SuiteConfig, out: Path, device: str = "auto", force: bool = False, quiet: bool = False,
              data_dir: str | None = None) -> RunSummary:
    out = Path(out)
    dev = resolve_device(device)
    cells = expand_cells(suite)
    check_model_path(suite)
    check_writable(out)
    summary = RunSummary()
    paths = [cell_path(out, suite.name, suite.preset, c.dataset.name, c.budget, c.strategy.key, c.seed) for c in cells]
    pending = [force or not _up_to_date(path, cell.hash) for cell, path in zip(cells, paths)]
    # Load the data before the first cell starts, so that a missing or damaged data set stops the
    # run at once with its own error (each data set once per run, only if some cell still needs it).
    loaded: dict[str, DatasetSplits] = {}
    for cell, todo in zip(cells, pending):
        key = repr(cell.config["dataset"])
        if todo and key not in loaded:
            loaded[key] = load_dataset(cell.dataset, data_dir)
    with Progress(quiet) as progress, progress.task(f"{suite.name} [{suite.preset}]", total=len(cells)) as bar:
        for cell, path, todo in zip(cells, paths, pending):
            if not todo:
                summary.skipped.append(path)
                bar.advance(status=f"up to date: {cell.label()}")
                continue
            record = run_cell(suite, cell, loaded[repr(cell.config["dataset"])], dev, quiet)
            write_result(path, record)
            (summary.done if record["status"] == "ok" else summary.failed).append(path)
            if record["status"] != "ok":
                progress.log(f"[red]error[/red] in {cell.label()}: {record['error']['message']}")
            bar.advance(status=f"{cell.label()}: {record['status']}")
    return summary


def _up_to_date(path: Path, digest: str) -> bool:
    """A finished (status ok) result with the same config hash; error results are retried."""
    if not path.is_file():
        return False
    try:
        record = read_result(path)
    except BenchError:
        return False
    return record.get("config_hash") == digest and record.get("status") == "ok"


def load_dataset(spec: NamedSpec, data_dir: str | None) -> DatasetSplits:
    cls = DATASETS.get(spec.name)
    try:
        dataset = cls(data_dir=data_dir, **spec.params)
    except TypeError as exc:
        raise BenchError(f"dataset {spec.name!r}: bad parameters {spec.params}: {exc}") from None
    return dataset.load()


def run_cell(suite: SuiteConfig, cell: Cell, data: DatasetSplits, device: torch.device, quiet: bool = True) -> dict[str, Any]:
    """Run one cell and return its result record (status ok or error)."""
    record: dict[str, Any] = {
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
    phases: dict[str, float] = {}
    meter = ComputeMeter(device)
    with meter:
        try:
            np.random.seed(cell.seed)  # for third-party code that draws from numpy's global generator
            task = Task.build(data, cell.budget, suite.val_per_class, cell.seed, suite.model, suite.train,
                              test_per_class=suite.test_per_class, synthetic=suite.synthetic,
                              device=str(device), quiet=quiet)
            strategy = build_strategy(cell.strategy.name, cell.strategy.params)
            result = strategy.run(task)
            phases["strategy_seconds"] = meter.record()["wall_seconds"]
            probs = result.classifier.predict_proba(task.test.x)
            ctx = EvalContext(task=task, classifier=result.classifier, y_true=task.test.y, probs=probs,
                              synthetic=result.synthetic)
            record["metrics"] = evaluate(suite.metrics, ctx)
            record["strategy_log"] = result.log
            phases["evaluation_seconds"] = meter.record()["wall_seconds"] - phases["strategy_seconds"]
        except Exception as exc:  # an error result is a result: never drop a failed cell
            record["status"] = "error"
            record["error"] = {"type": type(exc).__name__, "message": str(exc).splitlines()[0] if str(exc) else "",
                               "traceback": traceback.format_exc()}
    record["compute"] = {**meter.record(), "phases": phases}
    record["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return record
