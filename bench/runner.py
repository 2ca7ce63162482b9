"""Runs a suite: expands it into cells (bench.cells), and writes one result JSON per (dataset, budget,
strategy, seed), skipping cells whose result already exists with the same config hash (so an
interrupted run resumes where it stopped); `force` recomputes. A cell that raises is written as an
error result with its partial timings, and the grid goes on. Where the cells run (in this process, a
local process pool, a Ray cluster) is an executor's business (bench.executors); every executor runs a
cell through `bench.cells.run_cell`, and the records are written here, in the driver.

One run per output folder at a time: the driver holds an exclusive lock (`fcntl.flock`) on
<out>/LOCK_FILE for the whole run, the file holding its pid; a second run on the same folder is
refused at once with one line naming that pid (BenchError: exit 2), instead of computing every cell a
second time. The lock goes with the process, so a killed driver never leaves a stale lock behind.
Where flock does not exist (Windows), runs are not serialised."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.api import DatasetSplits
from bench.cells import Cell, data_key, expand_cells, load_dataset
from bench.config import SuiteConfig
from bench.errors import BenchError
from bench.eta import RunEstimate, format_duration
from bench.executors import Executor, Job, Sequential
from bench.progress import Progress
from bench.registry import GENERATORS
from bench.results import (
    TEMP_PREFIX,
    cell_path,
    check_write_place,
    clean_stale_temp_files,
    read_valid_result,
    save_fallback,
    write_result,
)

LOCK_FILE = ".bench.lock"  # in the output folder: held (flock) by the driver of the run writing there


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
              executor: Executor | None = None, history: Sequence[Path] = ()) -> RunSummary:
    """Run the suite's pending cells into `out` with `executor` (default: one after another in this
    process). `cell_timeout` (seconds) overrides the suite's limit. `history`: other results folders (the
    committed results) whose finished cells inform the run's time estimate beside `out`'s. A record that cannot be written to its
    cell path (a full disk, a folder in its place) is saved by `save_fallback`, the cell counts as failed
    and the run goes on; if it cannot be saved anywhere, the run stops (`RunSummary.stopped`)."""
    if not str(out).strip():
        raise BenchError("the output folder is empty: pass --out FOLDER (results are never written into the "
                         "current folder by default)")
    out = Path(out)
    executor = Sequential() if executor is None else executor
    executor.check(device)
    cells: list[Cell] = expand_cells(suite)
    check_model_path(suite)
    check_writable(out)
    with output_lock(out):
        return _run_locked(suite, out, cells, device, force, quiet, data_dir, cell_timeout, executor, history)


def _run_locked(suite: SuiteConfig, out: Path, cells: list[Cell], device: str, force: bool, quiet: bool,
                data_dir: str | None, cell_timeout: float | None, executor: Executor,
                history: Sequence[Path]) -> RunSummary:
    clean_stale_temp_files(out)  # left behind by a killed run
    timeout = cell_timeout if cell_timeout is not None else suite.cell_timeout
    summary = RunSummary()
    paths = [cell_path(out, suite.name, suite.version, suite.preset, c.dataset.name, c.budget, c.strategy.key, c.seed) for c in cells]
    pending = [force or not _up_to_date(path, cell.hash, out) for cell, path in zip(cells, paths)]
    # Load the data before the first cell starts, so that a missing or damaged data set stops the
    # run at once with its own error (each data set once per run, only if some cell still needs it).
    loaded: dict[str, DatasetSplits] = {}
    for cell, todo in zip(cells, pending):
        if todo and data_key(cell) not in loaded:
            loaded[data_key(cell)] = load_dataset(cell.dataset, data_dir)
    todo = [(cell, path) for cell, path, p in zip(cells, paths, pending) if p]
    # From the start, how long the pending cells will take (bench.eta), kept current as they finish.
    eta = RunEstimate.of(suite, [cell for cell, _ in todo], roots=(out, *history),
                         parallel=getattr(executor, "workers", None) or 1)
    if todo:
        print(f"{suite.name} [{suite.preset}]: {eta.describe()}", file=sys.stderr)
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
                    check_write_place(out, path)  # no '..', no symlinked folder: the write stays in out
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
                eta.finished(i, record["compute"]["wall_seconds"])
                left = eta.remaining_seconds()
                bar.advance(status=f"{cell.label()}: {record['status']}"
                            + ("" if left is None or not left else f"; {format_duration(left)} left"))
    return summary


@contextlib.contextmanager
def output_lock(out: Path):
    """Hold the exclusive lock of the output folder `out` (its LOCK_FILE, which then holds this pid) for
    the block; BenchError naming the holder's pid when another run holds it. No-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; concurrent runs double the work but lose nothing
        yield
        return
    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise BenchError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise BenchError(f"another bench run (pid {holder}) is writing into {out}: wait for it to finish, "
                             "or pass another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # released: no pid left to name
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _up_to_date(path: Path, digest: str, out: Path) -> bool:
    """A finished (status ok) result with the same config hash, read by the one strict reader
    (bench.results.read_valid_result: the cell its path names, its hash its config's, its artifacts
    intact); error results are retried. A file that fails is named in one line and recomputed."""
    if not os.path.lexists(path) or (path.is_dir() and not path.is_symlink()):
        return False  # nothing there, or a folder in its place (its write fails and says so)
    try:
        record = read_valid_result(path, root=out)
    except BenchError as exc:
        print(f"bench: warning: {exc}; recomputing it", file=sys.stderr)
        return False
    return record["config_hash"] == digest and record["status"] == "ok"
