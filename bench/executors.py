"""Executors: where a suite's pending cells run (`bench run --executor local|ray [--workers N]`).

The runner (`bench.runner.run_suite`) decides which cells are pending, loads their data once, keeps the
progress bar and writes every record atomically; an executor only turns cells into result records, each
through the one function that runs a cell (`bench.cells.run_cell`), and yields `(index, record)` as
each cell finishes, in whatever order they finish. Workers never write result files, so they need no
file system shared with the driver.

- `Sequential` (`--executor local`, the default; `--workers 1`): in the driver process, one cell after
  another, exactly as `bench run` always ran.
- `LocalPool` (`--executor local --workers N`, N > 1): N worker processes started with the `spawn`
  method (concurrent.futures.ProcessPoolExecutor). Each worker sets OMP_NUM_THREADS/MKL_NUM_THREADS
  before it imports torch and then `torch.set_num_threads(max(1, cores // N))`, so N workers on N cores
  do not oversubscribe them. One task per cell: cells that share a fitted generator share it through
  the on-disk cache (bench.generator) of this machine, as they do in one process.
- `RayExecutor` (`--executor ray`): Ray tasks with declared resources (`--cpus-per-cell`, default 1,
  and `--gpus-per-cell`, default 0; fractions allowed) on a cluster (`--address`) or on a Ray instance
  started on this machine. One task per *group*: the cells that sample the suite's shared generator
  (strategies with `uses_generator`) for one data set, budget and seed run one after another in one
  task, so the generator is fitted once and reused in that worker (a worker's generator cache is local
  to its machine); every other cell is a task of its own. A task is a Ray generator that yields each
  record as its cell finishes. The data of each data set is loaded once by the driver and put in Ray's
  object store, so workers need neither the data files nor a shared folder; the harness (and any
  plug-in package) must be installed on every node.

Workers die with their driver: each pool worker arms `die_with_parent` when it starts (Linux: the
kernel's parent-death signal, prctl PR_SET_PDEATHSIG = SIGKILL; elsewhere a watchdog thread on
os.getppid()), so a driver killed with SIGKILL leaves no idle worker (about 1 GB each) behind.

A worker that dies (killed, out of memory, a crash in native code, `os._exit` in a plug-in) turns the
cell it was running into an error row of the same format as any failed cell (`error.type`
`BrokenProcessPool`, `WorkerCrashedError`, ...), and the run goes on. On Ray, the later cells of its
group run in a new task. A process pool that breaks fails every cell in flight and stops its other
workers, and does not say which worker died: each worker marks, in an array shared with the driver, the
cell it starts, and a cell the broken pool stops (SIGTERM) as stopped. A single started cell is the
culprit; stopped and unstarted cells run again; when several cells had started (two workers killed at
once), each is rerun alone, so that the culprit shows. Cells in flight when the pool broke twice without
any started cell to blame become error rows (a worker that dies before it can run anything).

Determinism: a cell's result depends on its seed alone (bench.cells.run_cell seeds Python's, numpy's
and torch's global generators when it starts; components draw from their own seeded generators), not
on which process ran it or what ran before, so every executor writes the same metrics as the sequential
run at the same torch thread count (recorded as hardware.torch_threads; CPU kernels may round
differently with another thread count) and the same kernel pins (`--kernels`, hardware.kernels: see
bench.kernels).

The plug-ins a suite names (its data sets, model, generators, strategies and metrics) are sent to the
workers by reference, so an entry registered in the driver at run time (by a script or a test) exists in
the workers too, provided its module imports there.
"""
from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import pickle
import re
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, Sequence

from bench.errors import BenchError
from bench.kernels import PORTABLE_KERNELS

# bench.cells (which runs a cell, and imports numpy and torch) is imported inside the functions that need
# it, never at the top: a pool worker imports this module to find its initializer (_init_worker), which
# sets the thread variables before numpy and torch load. bench.cells imports nothing of this module, and
# this module nothing of bench.runner.
if TYPE_CHECKING:  # annotations only (see above)
    from bench.api import DatasetSplits
    from bench.cells import Cell
    from bench.config import SuiteConfig

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'active-synthesis-bench[ray]'"
# Thread pools read these when torch (and numpy's BLAS) load: a worker sets them first.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# A cell in flight when the pool broke this many times, with no started cell to blame, becomes an error
# row (workers die before they can run it, e.g. a plug-in that fails to import in a fresh process).
MAX_STRIKES = 2
QUEUED, STARTED, STOPPED, FINISHED = 0, 1, 2, 3  # a cell's state in a pool (see LocalPool.run)
_ADDRESS = re.compile(r"auto|(ray://)?[^\s:/]+:\d{1,5}")


@dataclass(frozen=True)
class Job:
    """What every cell of a run needs besides the cell itself and its data."""

    suite: SuiteConfig
    device: str  # as given (auto, cpu, cuda[:i]); resolved where the cell runs
    timeout: float | None  # seconds per cell, None: no limit
    data_dir: str | None
    quiet: bool = True  # training progress bars: only in the driver's own process


class Executor(Protocol):
    def check(self, device: str) -> None:
        """Raise BenchError before any work if the run cannot start (e.g. `cuda` without CUDA)."""

    def run(self, job: Job, cells: Sequence[Cell], data: Mapping[str, DatasetSplits]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield `(index into cells, result record)` for every cell exactly once, as each finishes.
        `data` maps `bench.cells.data_key(cell)` to the loaded data set. Closing the iterator early
        stops the work still queued."""


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, e.g. a container's or taskset's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_executor(kind: str = "local", workers: int | None = None, address: str | None = None,
                  cpus_per_cell: float | None = None, gpus_per_cell: float | None = None) -> Executor:
    """The executor for `bench run`'s flags; BenchError (one line, exit 2) for a combination that makes no sense."""
    if kind not in EXECUTORS:
        raise BenchError(f"unknown executor {kind!r}; use {' or '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise BenchError(f"--workers takes a whole number >= 1, got {workers!r}")
    if kind == "local":
        for flag, value in (("--address", address), ("--cpus-per-cell", cpus_per_cell), ("--gpus-per-cell", gpus_per_cell)):
            if value is not None:
                raise BenchError(f"{flag} applies to --executor ray only (a local pool gives each of its N workers "
                                 "max(1, cores // N) torch threads and the --device)")
        return Sequential() if workers in (None, 1) else LocalPool(workers)
    if address is not None and not _ADDRESS.fullmatch(address):
        raise BenchError(f"--address takes auto or HOST:PORT of a Ray head node (e.g. 10.0.0.1:6379), got {address!r}")
    cpus = 1.0 if cpus_per_cell is None else float(cpus_per_cell)
    gpus = 0.0 if gpus_per_cell is None else float(gpus_per_cell)
    if not 0 < cpus < float("inf"):
        raise BenchError(f"--cpus-per-cell takes a positive number of CPUs, got {cpus_per_cell!r}")
    if not 0 <= gpus < float("inf") or (gpus > 1 and not gpus.is_integer()):
        raise BenchError(f"--gpus-per-cell takes a fraction of one GPU (e.g. 0.5) or a whole number of GPUs, "
                         f"got {gpus_per_cell!r}")
    import_ray()  # before any work: without Ray installed, say so now
    return RayExecutor(address=address, workers=workers, cpus_per_cell=cpus, gpus_per_cell=gpus)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


# ------------------------------------------------------------------------------------------- in process


class Sequential:
    """In the driver process, one cell after another: the behaviour without --workers."""

    def check(self, device: str) -> None:
        from bench.device import resolve_device

        resolve_device(device)

    def run(self, job: Job, cells: Sequence[Cell], data: Mapping[str, DatasetSplits]) -> Iterator[tuple[int, dict[str, Any]]]:
        from bench.cells import data_key, run_cell
        from bench.device import resolve_device

        dev = resolve_device(job.device)
        for i, cell in enumerate(cells):
            yield i, run_cell(job.suite, cell, data[data_key(cell)], dev, job.quiet, timeout=job.timeout)


# ----------------------------------------------------------------------------------------- process pool


@dataclass
class LocalPool:
    """`workers` spawned processes on this machine, one cell per task (see the module docstring)."""

    workers: int
    threads: int | None = None  # torch threads per worker; None: max(1, cores // workers)

    def threads_per_worker(self) -> int:
        return self.threads or max(1, available_cores() // self.workers)

    def check(self, device: str) -> None:
        Sequential().check(device)  # the workers run on this machine: the driver can tell

    def run(self, job: Job, cells: Sequence[Cell], data: Mapping[str, DatasetSplits]) -> Iterator[tuple[int, dict[str, Any]]]:
        from bench.device import resolve_device

        # Workers load the data themselves from this machine's files (warm in the decoded-data cache:
        # the driver loaded it), which is cheaper than sending large arrays with every task.
        job = dataclasses.replace(job, device=str(resolve_device(job.device)), quiet=True)
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no forked torch thread pools
        # Each cell's state, written by the workers without a lock (one writer per slot at a time), read
        # here after a pool broke: which cells had started, and which were stopped by the pool itself.
        state = ctx.Array("b", max(1, len(cells)), lock=False)
        settings = (self.threads_per_worker(), pickle.dumps(plugin_entries(job.suite)), state, os.getpid())
        queue = collections.deque(range(len(cells)))
        isolated: set[int] = set()  # run alone: several started cells were in flight when a worker died
        strikes: collections.Counter[int] = collections.Counter()
        inflight: dict[Future, tuple[int, float]] = {}  # future -> (cell index, submission time)
        pool: ProcessPoolExecutor | None = None
        try:
            while queue or inflight:
                if pool is None:
                    pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=settings)
                broken = False
                while queue and len(inflight) < self.workers:
                    if inflight and (queue[0] in isolated or any(i in isolated for i, _ in inflight.values())):
                        break
                    i = queue[0]
                    state[i] = QUEUED
                    try:
                        future = pool.submit(_pool_cell, job, cells[i], i)
                    except BrokenProcessPool:  # a worker died after the last wait: the futures in flight fail
                        broken = True          # with it below; this cell stays queued (it never started)
                        break
                    queue.popleft()
                    inflight[future] = (i, time.perf_counter())
                if broken and not inflight:  # it died with no cell in flight (idle after its last cell)
                    pool.shutdown(wait=True)
                    pool = None
                    continue
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                crashed: list[tuple[int, float]] = []
                for future in done:
                    i, t0 = inflight.pop(future)
                    record = _outcome(future, job, cells[i], i, t0, crashed)
                    if record is not None:
                        yield i, record
                if not crashed:
                    continue
                # A broken pool fails every future still in flight and stops its other workers (SIGTERM: they
                # mark their cell STOPPED). Collect them, wait for every worker to exit, start a new pool.
                for future, (i, t0) in list(inflight.items()):
                    record = _outcome(future, job, cells[i], i, t0, crashed)
                    if record is not None:
                        yield i, record
                inflight.clear()
                pool.shutdown(wait=True)
                pool = None
                suspects = [i for i, _ in crashed if state[i] == STARTED]
                for i, t0 in sorted(crashed):
                    if i in suspects and (len(suspects) == 1 or i in isolated):
                        yield i, _error(job, cells[i], t0, "BrokenProcessPool",
                                        "the worker process running this cell died (killed, out of memory, a "
                                        "crash in native code, or os._exit in a plug-in)")
                        continue
                    if i in suspects:
                        isolated.add(i)  # several cells may have died: rerun each alone to find the culprit
                    elif not suspects:  # a worker died outside any cell (while starting?): count it
                        strikes[i] += 1
                        if strikes[i] >= MAX_STRIKES:
                            yield i, _error(job, cells[i], t0, "BrokenProcessPool",
                                            f"worker processes died {strikes[i]} times while this cell waited for "
                                            "one (a plug-in module that fails to import in a new process, or a "
                                            "script that starts the pool without `if __name__ == '__main__':`?)")
                            continue
                    queue.appendleft(i)  # stopped by the pool, or not started: innocent, run it again
                queue = collections.deque(sorted(queue, key=lambda i: (i not in isolated, i)))
        finally:
            if pool is not None:  # stopped early (a write that cannot be saved, Ctrl-C): drop queued cells
                pool.shutdown(wait=False, cancel_futures=True)


def _outcome(future: Future, job: Job, cell: Cell, index: int, t0: float,
             crashed: list[tuple[int, float]]) -> dict[str, Any] | None:
    """The finished future's record; None, with the cell added to `crashed`, if its worker died."""
    try:
        return future.result()
    except BrokenProcessPool:
        crashed.append((index, t0))
        return None
    except Exception as exc:  # noqa: BLE001  # raised outside run_cell (its data failed to load): an error row
        return _error(job, cell, t0, type(exc).__name__, str(exc))


def _error(job: Job, cell: Cell, t0: float, kind: str, message: str, detail: str = "") -> dict[str, Any]:
    """The error row of a cell whose worker produced no record; its wall time runs from `t0` (when it
    was sent to the worker, perf_counter seconds) to now."""
    from bench.cells import error_record

    return error_record(job.suite, cell, kind, message, device=job.device,
                        wall_seconds=time.perf_counter() - t0, detail=detail)


# What a pool worker keeps between tasks (module globals of the worker process).
_state: Any = None  # the run's shared array of cell states
_current: int | None = None  # the cell this worker is running
_problem: tuple[str, str] | None = None  # why this worker cannot run cells (its plug-ins failed to load)
_datasets: dict[str, DatasetSplits] = {}


def _init_worker(threads: int, entries: bytes, state: Any, parent: int | None = None) -> None:
    """A pool worker's start: bound to its driver's life (`die_with_parent`), its thread count before
    torch loads, then the driver's plug-ins."""
    global _state, _problem
    if parent is not None:
        die_with_parent(parent)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _state = state
    signal.signal(signal.SIGTERM, _stopped_by_pool)
    _problem = adopt_plugins(entries)


PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal this process gets when its parent dies
WATCHDOG_SECONDS = 1.0  # how often the portable watchdog looks for its parent (a dead driver's workers exit within it)


def die_with_parent(parent: int) -> str:
    """End this process when its parent (the driver, pid `parent`) dies, even by SIGKILL, which runs no
    clean-up: on Linux the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG); elsewhere a daemon thread
    polls os.getppid() every WATCHDOG_SECONDS and exits when the parent is gone (the process is then
    re-parented). A worker left behind would hold its memory (about 1 GB with torch) and its CPU for
    minutes. Returns the mechanism used: "pdeathsig" or "watchdog"."""
    mechanism = "watchdog"
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                mechanism = "pdeathsig"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)
    if mechanism == "watchdog":
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(WATCHDOG_SECONDS)
            os._exit(1)

        threading.Thread(target=watch, name="bench-parent-watchdog", daemon=True).start()
    return mechanism


def _stopped_by_pool(signum: int, frame: Any) -> None:
    """SIGTERM: a broken pool stops its remaining workers so. Mark the cell as stopped, not as the one
    that killed the pool, and exit at once."""
    if _current is not None:
        _state[_current] = STOPPED
    os._exit(128 + signum)


def _pool_cell(job: Job, cell: Cell, index: int) -> dict[str, Any]:
    global _current
    import torch

    from bench import cells

    _current, _state[index] = index, STARTED  # if this process dies now, the driver knows which cell it ran
    try:
        if _problem is not None:
            record = cells.error_record(job.suite, cell, *_problem, device=job.device)
        else:
            key = cells.data_key(cell)
            if key not in _datasets:
                _datasets[key] = cells.load_dataset(cell.dataset, job.data_dir)
            record = cells.run_cell(job.suite, cell, _datasets[key], torch.device(job.device), quiet=True,
                                     timeout=job.timeout)
    finally:
        _current = None
    _state[index] = FINISHED  # should its record be lost with a pool that breaks now, the cell is not to blame
    return record


def plugin_entries(suite: SuiteConfig) -> list[tuple[str, str, Any, Any]]:
    """(registry, name, registered object, capabilities) of every entry the suite's cells use."""
    from bench.registry import REGISTRIES, STRATEGIES

    names: dict[str, set[str]] = {
        "datasets": {d.name for d in suite.datasets},
        "models": {suite.model.name},
        "strategies": {s.name for s in suite.strategies},
        "metrics": {m.name for m in suite.metrics},
        "generators": {suite.synthetic.generator.name} if suite.synthetic is not None else set(),
    }
    names["generators"] |= {STRATEGIES.caps(s).own_generator for s in names["strategies"]} - {None}
    return [(kind, name, REGISTRIES[kind].get(name), REGISTRIES[kind].caps(name))
            for kind, found in names.items() for name in sorted(found)]


def adopt_plugins(entries: bytes) -> tuple[str, str] | None:
    """Register, in this worker, the driver's entries (pickled `plugin_entries`) that it lacks. Returns
    (error type, message) when they cannot be loaded here, else None."""
    from bench.registry import REGISTRIES, load_plugins

    try:
        load_plugins()
        for kind, name, obj, caps in pickle.loads(entries):
            if name not in REGISTRIES[kind]:
                REGISTRIES[kind].add(name, obj, **dataclasses.asdict(caps))
    except Exception as exc:  # noqa: BLE001  # a module that does not import here: every cell says so
        return type(exc).__name__, f"the worker cannot load the suite's plug-ins: {exc}"
    return None


# ------------------------------------------------------------------------------------------------- Ray


@dataclass
class RayExecutor:
    """Cells as Ray tasks, grouped by shared generator (see the module docstring)."""

    address: str | None = None  # None: start a Ray instance on this machine (unless one is initialised)
    workers: int | None = None  # at most this many tasks in flight; None: as many as the cluster takes
    cpus_per_cell: float = 1.0  # Ray's num_cpus per task; torch threads per task: max(1, floor of it)
    gpus_per_cell: float = 0.0  # Ray's num_gpus per task (0.5: two cells share a GPU)
    _started_here: bool = dataclasses.field(default=False, repr=False)  # ray.init was called by this executor

    def check(self, device: str) -> None:
        """Before any work: the device flag, the connection to the cluster and its resources."""
        # The driver may have no GPU: cells resolve `auto`/`cuda` on their worker, which sees only the
        # GPUs Ray assigned to its task (CUDA_VISIBLE_DEVICES).
        if device.startswith("cuda") and self.gpus_per_cell == 0:
            raise BenchError(f"--device {device} with --executor ray needs --gpus-per-cell > 0 (Ray hides the GPUs "
                             "from tasks that declare none)")
        ray = import_ray()
        self._connect(ray)
        try:
            self._check_cluster(ray)
        except BenchError:
            self._disconnect(ray)
            raise

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():  # joined already (by check, or by the caller: a test, a notebook)
            return
        try:
            # the kernel pins of this run travel to every worker of the job (bench.kernels)
            pins = {name: os.environ[name] for name in PORTABLE_KERNELS if name in os.environ}
            ray.init(address=self.address, include_dashboard=False, runtime_env={"env_vars": pins} if pins else None)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise BenchError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0]}") from None
        self._started_here = True

    def _disconnect(self, ray: Any) -> None:
        if self._started_here:  # only what this executor started (or joined) is left
            ray.shutdown()
            self._started_here = False

    def run(self, job: Job, cells: Sequence[Cell], data: Mapping[str, DatasetSplits]) -> Iterator[tuple[int, dict[str, Any]]]:
        from bench.cells import data_key

        ray = import_ray()
        self._connect(ray)
        inflight: dict[Any, _Group] = {}
        try:
            job = dataclasses.replace(job, quiet=True)
            remote = ray.remote(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell,
                                max_retries=0)(_ray_group)  # a crash is an error row, not a retry
            threads = max(1, int(self.cpus_per_cell))
            entries = ray.cloudpickle.dumps(plugin_entries(job.suite))
            refs: dict[str, Any] = {}  # data set key -> object in Ray's store, put once
            queue = collections.deque(group_cells(job.suite, cells))
            while queue or inflight:
                while queue and (self.workers is None or len(inflight) < self.workers):
                    group = _Group(queue.popleft())
                    key = data_key(cells[group.cells[0]])
                    if key not in refs:
                        refs[key] = ray.put(data[key])
                    task = remote.remote(job, [cells[i] for i in group.cells], refs[key], threads, entries)
                    inflight[task] = group
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for task in ready:
                    group = inflight[task]
                    try:
                        record = ray.get(next(task))
                    except StopIteration:
                        del inflight[task]
                        for i in group.cells[group.done:]:  # cannot happen with _ray_group; never drop a cell
                            yield i, _error(job, cells[i], group.t0, "RayTaskError", "the task ended without its record")
                        continue
                    except ray.exceptions.RayError as exc:  # the worker died (or the task failed) in this cell
                        del inflight[task]
                        kind, message, detail = _ray_failure(exc)
                        i, rest = group.cells[group.done], group.cells[group.done + 1:]
                        yield i, _error(job, cells[i], group.t0, kind, message, detail)
                        if rest:  # the group's later cells had not started: a task of their own
                            queue.appendleft(rest)
                        continue
                    i = group.cells[group.done]
                    group.done, group.t0 = group.done + 1, time.perf_counter()
                    yield i, record
        finally:
            for task in inflight:  # stopped early: nothing more is wanted from these
                try:
                    ray.cancel(task, force=True)
                except Exception:  # noqa: BLE001  # finished or gone meanwhile
                    pass
            self._disconnect(ray)

    def _check_cluster(self, ray: Any) -> None:
        """A task that no node can hold would wait forever: refuse it at once."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if not any(r.get("CPU", 0) >= self.cpus_per_cell and r.get("GPU", 0) >= self.gpus_per_cell for r in nodes):
            offer = "; ".join(f"{r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU" for r in nodes) or "no nodes"
            raise BenchError(f"no node of the Ray cluster has {self.cpus_per_cell:g} CPU and {self.gpus_per_cell:g} GPU "
                             f"for a cell (--cpus-per-cell, --gpus-per-cell); its nodes have: {offer}")


@dataclass
class _Group:
    cells: list[int]  # indices into the run's cells, in order
    done: int = 0  # records received so far
    t0: float = dataclasses.field(default_factory=time.perf_counter)  # when the next cell's wait began


def group_cells(suite: SuiteConfig, cells: Sequence[Cell]) -> list[list[int]]:
    """Indices of `cells` in tasks: the cells that sample the suite's shared generator for one data set,
    budget and seed form one group (in run order); every other cell is a group of its own."""
    from bench.registry import STRATEGIES

    groups: dict[Any, list[int]] = {}
    for i, cell in enumerate(cells):
        shared = STRATEGIES.caps(cell.strategy.name).uses_generator and suite.synthetic is not None
        key = (repr(cell.config["dataset"]), str(cell.budget), cell.seed) if shared else i
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _ray_failure(exc: BaseException) -> tuple[str, str, str]:
    """(error type, one-line message, full text) of a Ray task's failure."""
    text = str(exc).strip()
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):  # the task raised (outside run_cell): name the original error
        return type(cause).__name__, (str(cause).strip().splitlines() or [""])[0], text
    kind = type(exc).__name__
    if kind == "WorkerCrashedError":
        message = ("the Ray worker running this cell died (killed, out of memory, a crash in native code, or "
                   "os._exit in a plug-in)")
    else:
        message = (text.splitlines() or [kind])[0]
    return kind, message, text


def _ray_group(job: Job, cells: list[Cell], data: DatasetSplits, threads: int, entries: bytes) -> Iterator[dict[str, Any]]:
    """A Ray task: the group's cells one after another in this worker, yielding each record."""
    import torch

    from bench.cells import error_record, run_cell
    from bench.device import resolve_device

    torch.set_num_threads(threads)  # a worker process runs many tasks: set for each
    problem = adopt_plugins(entries)
    try:
        device = resolve_device(job.device)  # here, where the GPUs Ray assigned are visible
    except BenchError as exc:
        problem = problem or ("BenchError", str(exc))
    for cell in cells:
        if problem is not None:
            yield error_record(job.suite, cell, *problem, device=job.device)
            continue
        yield run_cell(job.suite, cell, data, device, quiet=True, timeout=job.timeout)
