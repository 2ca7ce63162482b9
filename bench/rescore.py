"""`bench rescore`: compute the metrics a suite lists that its finished results lack, from each cell's
artifacts (bench.artifacts), without retraining.

For every cell of the suite (bench.runner.expand_cells) whose result in the results folder finished
(status ok), was trained with the very configuration the suite gives it now (everything but the
metrics), and has an artifacts file:
  - a metric is computed when the result lacks it, or its parameters or version changed; the others
    keep their values (a metric the suite dropped is dropped);
  - "predictions" metrics (classification, calibration, fairness and group metrics) read the stored
    test probabilities, with the labels and groups of the test split, rebuilt deterministically from
    the data set and the cell's seed by Task.build (cheap: nothing is trained);
  - "synthetic" metrics (FID, BLEU, sdmetrics, ...) read the synthetic split kept by
    `bench run --keep-synthetic`; a cell of a synthesising strategy that did not keep it is skipped,
    saying so (a strategy that synthesises nothing gets the run's None without it);
  - "model" metrics (PGD robustness) need the trained network, which no result keeps: the command
    refuses them, naming them, before anything is written.
The result is then rewritten atomically with the suite's current config and config hash (exactly what
expand_cells gives, so `bench run` counts the cell up to date), and `rescored` says which metrics came
later, when and from which code. Artifacts are checked against the sha256 their result records before
use: a damaged file stops the command with one line naming it, before any result is changed.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from bench import __version__, artifacts
from bench.api import DatasetSplits, EvalContext
from bench.cells import Cell, data_key, expand_cells, load_dataset
from bench.config import KeyedSpec, SuiteConfig
from bench.device import resolve_device
from bench.environment import code_version
from bench.errors import BenchError
from bench.evaluation import evaluate
from bench.progress import Progress
from bench.registry import METRICS, STRATEGIES
from bench.results import Result, cell_path, json_safe, read_valid_result, write_result
from bench.task import Task

NO_RESULT = "no result"
ERROR_RESULT = "error result"
NO_ARTIFACTS = "no artifacts (written before results kept them): rerun with `bench run --force`"


@dataclass
class Plan:
    cell: Cell
    path: Path
    record: dict[str, Any]
    todo: list[KeyedSpec]  # metrics to compute
    synthetic: bool  # whether the kept synthetic split is read


@dataclass
class RescoreSummary:
    rescored: list[Path] = field(default_factory=list)
    metrics_added: int = 0  # metric values computed, over all cells
    up_to_date: list[Path] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))  # reason -> results

    def line(self) -> str:
        """One summary line: cells rescored, metrics added, cells up to date, skipped with reasons."""
        s = "" if len(self.rescored) == 1 else "s"
        text = (f"{len(self.rescored)} cell{s} rescored ({self.metrics_added} metric value"
                f"{'' if self.metrics_added == 1 else 's'} added), {len(self.up_to_date)} up to date")
        if self.skipped:
            text += "; skipped: " + "; ".join(f"{len(p)} {reason}" for reason, p in sorted(self.skipped.items()))
        return text


class NoModel:
    """Stands in for the trained classifier, which results do not keep: a metric that reads it without
    declaring needs="model" fails with a message naming the cause."""

    def __getattr__(self, name: str) -> Any:
        raise BenchError(f"it reads the trained model (.{name}), which results do not keep; such a metric "
                         "must be registered with needs='model'")


def rescore(suite: SuiteConfig, results: Path, device: str = "auto", data_dir: str | None = None,
            quiet: bool = False) -> RescoreSummary:
    """Bring the suite's finished results under `results` up to date by computing their missing metrics
    from the artifacts (see the module docstring). BenchError (before any result changes) for a missing
    folder, no result of the suite, a damaged result or artifacts file, or a metric that needs the model."""
    results = Path(results)
    if not results.is_dir():
        problem = "is not a folder" if results.exists() else "does not exist"
        raise BenchError(f"results folder {results} {problem}")
    dev = resolve_device(device)
    summary = RescoreSummary()
    plans = _plan(suite, results, summary)
    loaded: dict[str, DatasetSplits] = {}  # every data set once, before the first cell (a missing one fails now)
    for plan in plans:
        if data_key(plan.cell) not in loaded:
            loaded[data_key(plan.cell)] = load_dataset(plan.cell.dataset, data_dir)
    with Progress(quiet) as progress, progress.task(f"rescore {suite.name} [{suite.preset}]", total=len(plans)) as bar:
        for plan in plans:
            reason = _rescore_cell(suite, plan, loaded[data_key(plan.cell)], dev)
            if reason is None:
                summary.rescored.append(plan.path)
                summary.metrics_added += len(plan.todo)
            else:
                summary.skipped[reason].append(plan.path)
                progress.log(f"skipped {plan.cell.label()}: {reason}")
            bar.advance(status=f"{plan.cell.label()}: {'rescored' if reason is None else 'skipped'}")
    return summary


def _plan(suite: SuiteConfig, results: Path, summary: RescoreSummary) -> list[Plan]:
    """What each cell needs, every artifact checked; BenchError before anything is computed."""
    plans: list[Plan] = []
    model_metrics: set[str] = set()
    found = 0
    for cell in expand_cells(suite):
        path = cell_path(results, suite.name, suite.version, suite.preset, cell.dataset.name, cell.budget,
                         cell.strategy.key, cell.seed)
        if not os.path.lexists(path):
            summary.skipped[NO_RESULT].append(path)
            continue
        found += 1
        record = read_valid_result(path, root=results)  # the one strict reader: BenchError naming it
        result = Result(record, path)
        if not result.ok:
            summary.skipped[ERROR_RESULT].append(path)
            continue
        if result.config_hash == cell.hash:
            summary.up_to_date.append(path)
            continue
        changed = training_changes(result.config, cell.config)
        if changed:
            summary.skipped[f"trained with another {', '.join(changed)}: rerun with `bench run`"].append(path)
            continue
        if not artifacts.has_sidecar(record):
            summary.skipped[NO_ARTIFACTS].append(path)
            continue
        todo = stale_metrics(suite, result)
        needs = {spec.key: METRICS.caps(spec.name).needs for spec in todo}
        model_metrics.update(k for k, n in needs.items() if n == "model")
        synthetic = [k for k, n in needs.items() if n == "synthetic"]
        reads_synthetic = bool(synthetic) and STRATEGIES.caps(cell.strategy.name).synthesises
        if reads_synthetic and not artifacts.kept_synthetic(record):
            summary.skipped[f"synthetic split not kept ({', '.join(synthetic)}): rerun with "
                            "`bench run --keep-synthetic --force`"].append(path)
            continue
        artifacts.verify(path, record, synthetic=reads_synthetic)  # a damaged file: BenchError naming it
        plans.append(Plan(cell, path, record, todo, reads_synthetic))
    if model_metrics:
        names = ", ".join(sorted(model_metrics))
        they = "it needs" if len(model_metrics) == 1 else "they need"
        raise BenchError(f"cannot rescore {names}: {they} the trained model, which results do not keep; recompute "
                         "the cells with `bench run`")
    if not found:
        raise BenchError(f"no results of suite {suite.name!r} v{suite.version} [{suite.preset}] under {results}: "
                         "run the suite with `bench run --out` into that folder first")
    return plans


def _plain(x: Any) -> Any:
    """JSON's view of a value (tuples as lists, numpy scalars as numbers), as a result file holds it."""
    return json.loads(json.dumps(json_safe(x, strict=False), sort_keys=True))


def training_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The parts of a cell's config, other than its metrics, in which `old` (a result's) differs from
    `new` (the suite's now), e.g. ["train", "versions.strategy"]: none, and the metrics can be rescored."""
    a, b = _plain(old), _plain(new)
    for cfg in (a, b):
        cfg.pop("metrics", None)
        if isinstance(cfg.get("versions"), dict):
            cfg["versions"].pop("metrics", None)
    changed = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if key == "versions" and isinstance(va, dict) and isinstance(vb, dict):
            changed += [f"versions.{k}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
        else:
            changed.append(key)
    return changed


def stale_metrics(suite: SuiteConfig, result: Result) -> list[KeyedSpec]:
    """The suite's metrics that `result` lacks, or computed with other parameters or another version."""
    config = result.config
    entries = {m if isinstance(m, str) else (m.get("id") or m.get("name")): m for m in config.get("metrics") or []}
    versions = (config.get("versions") or {}).get("metrics") or {}
    return [spec for spec in suite.metrics
            if spec.key not in result.metrics or entries.get(spec.key) != _plain(spec.record())
            or versions.get(spec.key) != METRICS.caps(spec.name).version]


def _rescore_cell(suite: SuiteConfig, plan: Plan, data: DatasetSplits, device: torch.device) -> str | None:
    """Compute the plan's metrics and rewrite its result; the reason when the cell is skipped instead."""
    cell, record = plan.cell, plan.record
    result = Result(record, plan.path)
    task = Task.build(data, cell.budget, suite.val_per_class, cell.seed, suite.model, suite.train,
                      test_per_class=suite.test_per_class, synthetic=suite.synthetic, device=str(device), quiet=True)
    if result.real_data is not None and (result.real_fingerprint != task.real_fingerprint
                                        or result.test_examples != len(task.test)):
        return "the data set's splits differ from the run's (another data set file?): rerun with `bench run --force`"
    probs = artifacts.read_sidecar(plan.path, record)["probs"]
    if probs.shape != (len(task.test), task.num_classes):
        raise BenchError(f"{artifacts.sidecar_path(plan.path)}: its probabilities have shape {probs.shape}, the test "
                         f"split needs ({len(task.test)}, {task.num_classes})")
    synthetic = artifacts.read_synthetic(plan.path, record) if plan.synthetic else None
    ctx = EvalContext(task=task, classifier=NoModel(), y_true=task.test.y, probs=probs.astype(np.float64),
                      synthetic=synthetic)
    random.seed(cell.seed)  # as run_cell seeds them, for metrics that draw from the global generators
    np.random.seed(cell.seed)
    torch.manual_seed(cell.seed)
    computed: dict[str, dict[str, Any]] = {}
    for spec in plan.todo:
        try:
            computed.update(evaluate([spec], ctx))
        except Exception as exc:  # noqa: BLE001  # a metric that fails leaves the result as it was
            lines = str(exc).strip().splitlines()
            return f"metric {spec.key} failed: {type(exc).__name__}: {lines[0] if lines else ''}"
    update(record, suite, cell, computed)
    write_result(plan.path, record)
    return None


def update(record: dict[str, Any], suite: SuiteConfig, cell: Cell, computed: dict[str, dict[str, Any]]) -> None:
    """`record` as the suite's cell now: its metrics in the suite's order (computed ones new, the others
    kept), the suite's config and hash, and `rescored` naming the metrics computed after the run."""
    before = Result(record)  # read before the rewrite below
    earlier, kept = set(before.rescored_metrics), before.metrics
    record["metrics"] = {k: computed[k] if k in computed else kept[k] for k in suite.metric_keys}
    record["config"] = cell.config
    record["config_hash"] = cell.hash
    record["suite"]["primary_metric"] = suite.primary_metric
    later = [k for k in suite.metric_keys if k in computed or k in earlier]
    if computed:
        record["rescored"] = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "metrics": later,
                              "code": {**code_version(), "package_version": __version__}}
    elif later:
        record["rescored"]["metrics"] = later
    else:
        record.pop("rescored", None)
