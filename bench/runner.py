"""Runs a suite: expands it into cells (bench.cells), and writes one result JSON per (dataset, budget,
strategy, seed), skipping cells whose result already exists with the same config hash (so an
interrupted run resumes where it stopped); `force` recomputes. A cell that raises is written as an
error result with its partial timings, and the grid goes on. Where the cells run (in this process, a
local process pool, a Ray cluster) is an executor's business (bench.executors); every executor runs a
cell through `bench.cells.run_cell`, and the records are written here, in the driver."""
from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.api import DatasetSplits
from bench.cells import Cell, data_key, expand_cells, load_dataset
from bench.config import SuiteConfig
from bench.errors import BenchError
from bench.executors import Executor, Job, Sequential
from bench.progress import Progress
from bench.registry import GENERATORS
from bench.results import TEMP_PREFIX, cell_path, clean_stale_temp_files, read_valid_result, save_fallback, write_result


@dataclass
class RunSummary:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    unsaved: list[Path] = field(default_factory=list)  # records saved elsewhere because their cell path failed
    stopped: str | None = None  # why the run stopped before its last cell (nothing could be saved)


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
    cells: list[Cell] = expand_cells(suite)
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


def _up_to_date(path: Path, digest: str) -> bool:
    """A finished (status ok) result with the same config hash; error results are retried."""
    if not path.is_file():
        return False
    try:
        record = read_valid_result(path)  # a damaged or schema-invalid file is recomputed
    except BenchError:
        return False
    return record["config_hash"] == digest and record["status"] == "ok"
