"""The result store: one JSON file per cell, written atomically and validated against the declared
schema (`bench/result_schema.json`, version SCHEMA_VERSION), and read back as typed results.

Layout: <out>/<suite>/v<version>/<preset>/<dataset>/<budget: n100, all or pct10>/<strategy id>/seed<seed>.json

A write goes through a temporary file named TEMP_PREFIX... in the cell's folder, fsynced, renamed into
place, and the folder fsynced, so that neither an interruption nor a power loss leaves a truncated
result. Temporary files orphaned by a killed process are removed by `clean_stale_temp_files`. A record
that cannot be written where it belongs is saved under <out>/UNSAVED_DIR (or a new private folder in
the temporary folder) by `save_fallback`, so that a computed cell is never lost.

Nothing read back is believed. Every command reads a result through one function, `read_valid_result`
(through `iter_results` / `load_results` for a whole folder): a regular file (no symlink, device or
FIFO; no symlinked folder below the results folder) of at most MAX_RESULT_BYTES, strict JSON (no NaN,
Infinity, 1e999 or duplicate key), valid against the schema with finite numbers, anchored patterns,
safe slugs for every name that becomes a path, RFC 3339 times and declared metric ranges; its
config_hash recomputed from its config; the cell it records the cell its path names; its artifacts
file of the size and sha256 it records. A file that fails is named in one line, skipped by the readers
(never counted) and recomputed by `bench run`.

The readers (leaderboard, stats, report, compare, rescore) see a record through `Result`: typed
properties over the validated record (suite, cell, status, metrics, compute, strategy log, real data,
provenance), and the grouping helpers `by_group`, `by_family`, `by_strategy` and `by_seed`.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema

from bench.artifacts import PAYLOAD, read_regular, verify_sidecar_file, write_files, write_payload
from bench.config import config_hash
from bench.data import write_atomic
from bench.errors import BenchError

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("result_schema.json")
TEMP_PREFIX = ".bench-tmp-"  # every temporary file the harness writes among the results starts so
# Temporary result files of versions before TEMP_PREFIX: ".seed0.<random>.tmp".
_LEGACY_TEMP = re.compile(r"\.seed\d+\..+\.tmp")
# A temporary file lives for the milliseconds of one write; one this old belongs to a killed process.
STALE_TEMP_SECONDS = 60.0
UNSAVED_DIR = ".unsaved"
# Bytes: the largest committed result is 32 KB (a DP-GAN cell's strategy log); a result file larger than
# this is not a result (a planted file, a symlink to /dev/zero), and is refused before it is parsed.
MAX_RESULT_BYTES = 8 * 2**20


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def budget_segment(budget: int | str) -> str:
    """A budget's folder: n<int> for n per class, `all`, pct<P> for "P%" (pct2.5 for "2.5%")."""
    if isinstance(budget, int):
        return f"n{budget}"
    return "all" if budget == "all" else f"pct{budget.rstrip('%')}"


def cell_path(out: Path, suite: str, version: int, preset: str, dataset: str, budget: int | str, strategy: str,
              seed: int) -> Path:
    """Where a cell's result lives; the suite's version is a folder of its own, so that two versions of a
    suite written into one `--out` never overwrite each other. The names are validated as safe slugs in
    the suite config; as a second line of defence, a path that is not exactly seven folders below `out`
    once normalised (a name holding '/', '..' or an absolute path) is refused. The check is lexical, so
    that a results tree with a symlinked sub-folder on another disk keeps working."""
    path = Path(out) / suite / f"v{version}" / preset / dataset / budget_segment(budget) / strategy / f"seed{seed}.json"
    rel = Path(os.path.relpath(os.path.normpath(path), os.path.normpath(out)))
    if rel.is_absolute() or ".." in rel.parts or len(rel.parts) != 7:
        where = f"{suite}/v{version}/{preset}/{dataset}/{budget_segment(budget)}/{strategy}/seed{seed}"
        raise BenchError(f"result path of cell {where} would lie outside its place in the output folder {out}")
    return path


# Patterns in the schema are anchored at both ends: JSON Schema's `$` is ECMA-262's, but Python's re
# (which jsonschema uses) also matches `$` before a final newline, so "seed0.npz\n" would pass
# "^seed[0-9]+\\.npz$". The validator reads a final unescaped `$` as `\Z` (the very end).
_TRAILING_DOLLAR = re.compile(r"(?<!\\)\$$")
# RFC 3339 date-time (what the schema's "format": "date-time" means), checked here: jsonschema checks a
# format only with optional packages, so "yesterday" would pass unchecked.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _anchored(pattern: str) -> str:
    return _TRAILING_DOLLAR.sub(r"\\Z", pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not re.search(_anchored(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # a real date: no 2026-02-31
    return True


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
    return cls(schema(), format_checker=_FORMATS)


def validate_result(record: Any) -> None:
    """Raise BenchError with the first schema violation, e.g. 'metrics.accuracy.value: ...'. Patterns
    are anchored at the very end, date-times are RFC 3339, and numbers must be finite (a record in memory
    may hold NaN, which JSON cannot; a file cannot, see `parse_json`)."""
    err = jsonschema.exceptions.best_match(_validator().iter_errors(record))
    if err is None:
        err_where, err_msg = _non_finite(record)
        if err_where is None:
            return
    else:
        err_where, err_msg = ".".join(str(p) for p in err.absolute_path) or "(top level)", err.message
    raise BenchError(f"result does not match schema v{SCHEMA_VERSION}: {err_where}: {err_msg}")


def _non_finite(o: Any, where: str = "") -> tuple[str | None, str]:
    """The place of the first non-finite float in `o` (NaN, ±Infinity), or (None, "")."""
    if isinstance(o, float) and not math.isfinite(o):
        return where or "(top level)", f"{o!r} is not a finite number"
    items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where else str(k))
        if found[0] is not None:
            return found
    return None, ""


@functools.lru_cache(maxsize=None)
def metric_range(name: str) -> tuple[float, float] | None:
    """The closed range a registered metric's values lie in, as its capabilities declare it (`range`,
    e.g. (0, 1) for a fraction); None where the metric declares none or is not registered here."""
    try:
        from bench.registry import METRICS

        bounds = getattr(METRICS.caps(name), "range", None)
    except Exception:  # noqa: BLE001  # an unknown metric (a plug-in not installed here): no range known
        return None
    return None if bounds is None else (float(bounds[0]), float(bounds[1]))


def check_record(record: dict[str, Any]) -> None:
    """What the schema cannot say: the config hash is the hash of the recorded config (an edited config
    no longer claims to be the experiment it was), and each metric value (each entry of a mapping value)
    lies in the range its metric declares. BenchError naming the first problem."""
    digest = config_hash(record["config"])
    if digest != record["config_hash"]:
        raise BenchError(f"config_hash {record['config_hash'][:12]}... is not the hash {digest[:12]}... of the "
                         "recorded config (edited after the run)")
    for name, m in record["metrics"].items():
        bounds = metric_range(name) if isinstance(name, str) else None
        if bounds is None:
            continue
        values = m["value"].items() if isinstance(m["value"], dict) else [(None, m["value"])]
        for key, v in values:
            if isinstance(v, (int, float)) and not bounds[0] <= v <= bounds[1]:
                where = name if key is None else f"{name}.{key}"
                raise BenchError(f"metrics.{where}.value: {v!r} is outside the metric's range "
                                 f"[{bounds[0]:g}, {bounds[1]:g}]")


def encode_result(record: dict[str, Any]) -> str:
    """The JSON text of a record, validated against the schema (what lands on disk: numpy scalars
    become JSON numbers). BenchError names the first problem, e.g. a value that is not JSON. The arrays
    a record carries to the writer (bench.artifacts.PAYLOAD) are not part of it."""
    record = {k: v for k, v in record.items() if k != PAYLOAD}
    try:
        text = json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError, RecursionError) as exc:
        raise BenchError(f"result is not JSON: {exc}") from None
    validate_result(json.loads(text))
    return text


def write_result(path: Path, record: dict[str, Any], root: Path | None = None) -> None:
    """Validate, then write atomically (bench.data.write_atomic: a temporary file named TEMP_PREFIX...,
    fsynced, renamed into place, the folder fsynced), so that neither an interruption nor a power loss
    leaves a truncated result behind. OSError (a full disk, an unwritable folder, a folder at `path`)
    propagates.

    A record carrying artifacts (bench.artifacts.PAYLOAD, from run_cell) has them taken out and written
    first, beside the result (and under <out>/.synthetic where the synthetic split is kept), and names
    them under `artifacts`; the record is validated before anything is written. With `root` (the results
    folder), every file must stay inside it (`check_write_place`: no '..', no symlinked folder on the way),
    else BenchError before anything is written."""
    encode_result(record)
    if root is not None:
        check_write_place(Path(root), Path(path))
    files = write_payload(path, record)
    if root is not None:
        for target, _ in files:
            check_write_place(Path(root), target)
    text = encode_result(record)
    write_files(files, prefix=TEMP_PREFIX)
    write_atomic(path, text.encode(), prefix=TEMP_PREFIX)


def save_fallback(out: Path, path: Path, record: dict[str, Any]) -> Path | None:
    """Save a computed record that could not be written to `path`, as `unsaved-<the cell path with '--'
    for '/'>.json` (a name that neither resumption nor the leaderboard reads): under <out>/UNSAVED_DIR
    (a real folder, never a symlink; created private), else in a new private folder that `mkdtemp`
    creates in the temporary folder ($TMPDIR; never a fixed, guessable name, so a planted symlink there
    cannot redirect the write). Each write is atomic (bench.data.write_atomic: a temporary file created
    exclusively, fsynced, renamed), so a full disk leaves no empty or truncated file. Returns where it
    went, None if nowhere; each place that failed is said in one warning line."""
    rel = os.path.relpath(os.path.normpath(path), os.path.normpath(out))
    name = "unsaved-" + rel.replace(os.sep, "--")
    record = {k: v for k, v in record.items() if k != PAYLOAD}  # the record, not its arrays
    data = (json.dumps(json_safe(record, strict=False), indent=2) + "\n").encode()
    folder = Path(out) / UNSAVED_DIR
    try:
        if os.path.lexists(folder) and not stat.S_ISDIR(folder.lstat().st_mode):
            raise OSError(f"{folder} is not a real folder (a symlink or a file): not written through")
        folder.mkdir(mode=0o700, exist_ok=True)
        target = folder / name
        write_atomic(target, data, mode=0o600, prefix=TEMP_PREFIX)
        return target
    except OSError as exc:
        print(f"bench: warning: cannot save the record in {folder}: {exc.strerror or exc}", file=sys.stderr)
    private: Path | None = None
    try:
        # $TMPDIR when it is set (tempfile would silently fall back to another folder, even the current one)
        private = Path(tempfile.mkdtemp(prefix="bench-unsaved-", dir=os.environ.get("TMPDIR") or None))
        target = private / name
        write_atomic(target, data, mode=0o600, prefix=TEMP_PREFIX)
        return target
    except OSError as exc:
        where = private or os.environ.get("TMPDIR") or tempfile.gettempdir()
        print(f"bench: warning: cannot save the record in {where}: {exc.strerror or exc}", file=sys.stderr)
        if private is not None:
            try:
                private.rmdir()  # empty: write_atomic removed its temporary file
            except OSError:
                pass
        return None


def clean_stale_temp_files(root: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the harness's temporary files under `root` (TEMP_PREFIX, or ".seedN.*.tmp" of older
    versions) last modified more than `older_than` seconds ago: a killed process orphaned them (a
    live write holds its file for milliseconds). Returns the files removed; nothing else is touched."""
    removed = []
    now = time.time()
    for path in Path(root).rglob("*"):
        if not (path.name.startswith(TEMP_PREFIX) or _LEGACY_TEMP.fullmatch(path.name)):
            continue
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except OSError:  # removed meanwhile by another run, or not ours to remove
            continue
    return removed


def json_safe(o: Any, where: str = "", strict: bool = True) -> Any:
    """Plain JSON types: numpy/torch scalars and arrays become numbers and lists, and a non-finite
    float becomes null (JSON has no NaN). Anything else is a TypeError naming its place (`where`, e.g.
    "strategy_log.seen: set is not JSON serialisable"), or with strict=False its repr()."""
    if isinstance(o, dict):
        return {str(k): json_safe(v, f"{where}.{k}" if where else str(k), strict) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v, f"{where}.{i}" if where else str(i), strict) for i, v in enumerate(o)]
    if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):  # numpy / torch scalars and arrays
        return json_safe(o.tolist(), where, strict)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if o is None or isinstance(o, (str, int, float, bool)):
        return o
    if not strict:
        return repr(o)
    raise TypeError(f"{where or '(top level)'}: {type(o).__name__} is not JSON serialisable")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"duplicate key {k!r}")
        out[k] = v
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):  # 1e999 parses as inf
        raise ValueError(f"{text} is not a finite number")
    return x


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity (Python's json accepts them), no number that overflows to
    infinity (1e999), no duplicate key in an object (Python keeps the last, silently). ValueError
    (json.JSONDecodeError, UnicodeDecodeError or a plain ValueError) says what is wrong."""
    return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant,
                      parse_float=_finite_float)


def read_result(path: Path) -> Any:
    """The parsed JSON of a result file (not yet validated: it may be any JSON value). Only a regular
    file is read (no symlink, device, FIFO or folder), of at most MAX_RESULT_BYTES, as strict JSON
    (`parse_json`). BenchError naming the file otherwise."""
    data = read_regular(Path(path), MAX_RESULT_BYTES, "result")
    try:
        return parse_json(data)
    except UnicodeDecodeError as exc:
        raise BenchError(f"result {path} is not valid JSON: not UTF-8 text (offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"result {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise BenchError(f"result {path} is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise BenchError(f"result {path} is not valid JSON: {exc}") from None


def read_valid_result(path: Path, root: Path | None = None) -> dict[str, Any]:
    """THE reader of a result file: every command reads results through it (bench run's up-to-date check,
    leaderboard, stats, report, compare, rescore, validate). The file is a regular file below `root`
    reached through no symlink, of at most MAX_RESULT_BYTES, strict JSON (`parse_json`), valid against
    the schema (finite numbers, anchored patterns, RFC 3339 times), its config_hash the hash of its
    config, its metric values in their declared ranges (`check_record`); with `root` (the results folder)
    the cell it records is the cell its path names, and its artifacts file exists with the size and
    sha256 it records. BenchError naming the file, in one line, otherwise."""
    path = Path(path)
    if root is not None:
        _check_place(Path(root), path)
    record = read_result(path)
    try:
        validate_result(record)
        check_record(record)
    except BenchError as exc:
        raise BenchError(f"{path}: {exc}") from None
    if root is not None:
        # The results folder of a cell file is seven parts above it (cell_path), at or below `root`
        # (a command may read a sub-folder of a results folder: results/pneumoniamnist).
        top = path.parents[6] if len(path.parts) >= 8 else None
        expected = Result(record).cell_path(top) if top is not None else None
        if expected is None or os.path.normpath(expected) != os.path.normpath(path):
            rel = "?" if expected is None else os.path.relpath(os.path.normpath(expected), os.path.normpath(top))
            raise BenchError(f"{path}: records cell {rel.removesuffix('.json')}, not the cell its path names")
        if isinstance(record.get("artifacts"), dict):
            try:
                verify_sidecar_file(path, record["artifacts"])
            except BenchError as exc:
                raise BenchError(f"{path}: {exc}") from None
    return record


def _check_place(root: Path, path: Path) -> None:
    """BenchError unless `path` lies below `root` (lexically) and no folder or file between them is a
    symlink (a symlinked folder may lead anywhere; `root` itself may be one)."""
    rel = Path(os.path.relpath(os.path.normpath(path), os.path.normpath(root)))
    if rel.is_absolute() or ".." in rel.parts:
        raise BenchError(f"{path} does not lie in the results folder {root}")
    here = Path(root)
    for part in rel.parts:
        here = here / part
        try:
            if stat.S_ISLNK(here.lstat().st_mode):
                raise BenchError(f"{here} is a symbolic link: results are read and written only through real "
                                 f"folders and files below {root}")
        except FileNotFoundError:
            return  # nothing there yet (a write will create it)


def check_write_place(root: Path, path: Path) -> None:
    """Before writing `path` below `root`: BenchError where the write would leave `root` (a '..' in the
    path, a symlinked folder on the way, a symlink at the path itself)."""
    _check_place(root, path)


def iter_results(root: Path, on_invalid: Callable[[Path, str], None] | None = None
                 ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every result file (seed*.json) under `root`, read by `read_valid_result`, in path order. A file that
    fails (or a symlinked folder or file, which is not followed) is a BenchError naming it, or, with
    `on_invalid`, reported to it (the path and a one-line reason) and skipped: never counted."""
    root = Path(root)
    found: list[tuple[Path, str | None]] = []  # (path, reason it is refused before reading, or None)
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for d in sorted(dirs):
            if os.path.islink(here / d) and not d.startswith("."):
                found.append((here / d, f"{here / d} is a symbolic link to a folder: not followed (results are "
                                        f"read only through real folders below {root})"))
        for f in files:
            if f.startswith("seed") and f.endswith(".json"):
                found.append((here / f, None))
    seen: dict[tuple[Any, ...], Path] = {}  # cell -> the file read for it: a second file of a cell is refused
    for path, reason in sorted(found):
        try:
            if reason is not None:
                raise BenchError(reason)
            record = read_valid_result(path, root)
            r = Result(record)
            key = (r.suite, r.version, r.preset, r.dataset, str(r.budget), r.strategy, r.seed)
            if key in seen:
                label = f"{r.suite}/v{r.version}/{r.preset}/{r.dataset}/{budget_segment(r.budget)}/{r.strategy}/seed{r.seed}"
                raise BenchError(f"{root} holds two results of cell {label}: {seen[key]} and {path}; {path} is not read")
            seen[key] = path
        except BenchError as exc:
            if on_invalid is None:
                raise
            on_invalid(path, str(exc))
            continue
        yield path, record


# ---------------------------------------------------------------------------------------------
# The typed view of a record and its grouping helpers.

GroupKey = tuple[str, int, str, str, int | str]  # (suite, version, preset, dataset, budget)
Family = tuple[str, int, str]  # (suite, version, preset): one verdict table, one section of the report
Group = tuple[str, int | str]  # (dataset, budget) within a family


def finite_number(x: Any) -> float | None:
    """A finite int or float (not a bool) as a float, else None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


@dataclass(frozen=True, eq=False)
class Result(Mapping[str, Any]):
    """One cell's validated result record, read through typed properties. The record stays whole
    (`record`, and this object is a read-only mapping of it) for what takes it as stored:
    bench.artifacts reads its `artifacts` entry, `bench rescore` rewrites it."""

    record: Mapping[str, Any]
    path: Path | None = None  # the file it was read from; None for a record built in memory

    @classmethod
    def of(cls, r: Result | Mapping[str, Any]) -> Result:
        """`r` itself if it is a Result, else a view of the record `r`."""
        return r if isinstance(r, Result) else cls(r)

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.record)

    def __len__(self) -> int:
        return len(self.record)

    # The suite and the cell (`suite`, `cell`: required by the schema).
    @property
    def suite(self) -> str:
        return self.record["suite"]["name"]

    @property
    def version(self) -> int:
        return self.record["suite"]["version"]

    @property
    def preset(self) -> str:
        return self.record["suite"]["preset"]

    @property
    def primary_metric(self) -> str:
        return self.record["suite"]["primary_metric"]

    @property
    def dataset(self) -> str:
        return self.record["cell"]["dataset"]

    @property
    def budget(self) -> int | str:
        """Real examples per class, or a budget form ("all", "10%")."""
        return self.record["cell"]["budget"]

    @property
    def strategy(self) -> str:
        """The strategy's id in its suite (its folder): the registered name, or an id such as one per
        synthetic budget of a frontier preset."""
        return self.record["cell"]["strategy"]

    @property
    def seed(self) -> int:
        return int(self.record["cell"]["seed"])

    @property
    def family(self) -> Family:
        return (self.suite, self.version, self.preset)

    @property
    def group(self) -> GroupKey:
        return (self.suite, self.version, self.preset, self.dataset, self.budget)

    def cell_path(self, out: Path) -> Path:
        """Where the store keeps this cell's result under `out` (`cell_path`)."""
        return cell_path(out, self.suite, self.version, self.preset, self.dataset, self.budget, self.strategy,
                         self.seed)

    # The configuration.
    @property
    def config(self) -> Mapping[str, Any]:
        return self.record["config"]

    @property
    def config_hash(self) -> str:
        return self.record["config_hash"]

    @property
    def strategy_name(self) -> str | None:
        """The registered strategy the cell ran (config.strategy.name); None where not recorded."""
        return (self.config.get("strategy") or {}).get("name")

    @property
    def synthetic_budget(self) -> float | None:
        """Configured synthetic examples per class: 0 for a cell without a `synthetic` section (a strategy
        that does not synthesise), None where the section gives no number."""
        synthetic = self.config.get("synthetic")
        return 0.0 if synthetic is None else finite_number(synthetic.get("budget_per_class"))

    # Status and metrics.
    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def metrics(self) -> Mapping[str, Mapping[str, Any]]:
        """Metric name -> {"value": number, None or a mapping, "higher_is_better": bool}."""
        return self.record.get("metrics") or {}

    def value(self, metric: str) -> float | None:
        """The metric's value where it is a finite number; None where absent, missing or a mapping."""
        return finite_number(self.metrics.get(metric, {}).get("value"))

    def metric_values(self) -> dict[str, Any]:
        """Metric -> its value as stored: a number, None (not computed) or a mapping (per class, per group)."""
        return {name: m["value"] for name, m in self.metrics.items()}

    def higher_is_better(self, metric: str) -> bool | None:
        """The metric's direction as the record states it; None where the record lacks the metric."""
        m = self.metrics.get(metric)
        return None if m is None else bool(m["higher_is_better"])

    def samples(self, metric: str) -> dict[str, int] | None:
        """The examples the metric's value was computed on, per side ({"synthetic": ..., "reference": ...});
        None where the record lacks the metric or states no counts (older results, whole-test-split metrics)."""
        counts = self.metrics.get(metric, {}).get("samples")
        return None if counts is None else dict(counts)

    @property
    def rescored_metrics(self) -> list[str]:
        """The metrics `bench rescore` computed after the run."""
        return list((self.record.get("rescored") or {}).get("metrics") or [])

    # Compute and hardware (`compute`, `hardware`: required by the schema).
    @property
    def compute(self) -> Mapping[str, Any]:
        return self.record["compute"]

    def compute_number(self, key: str) -> float | None:
        """A compute figure (wall_seconds, cpu_hours, gpu_hours, peak_rss_bytes, ...) where it is a finite
        number; None where the cell lacks it (GPU hours on the CPU)."""
        return finite_number(self.compute.get(key))

    def cost_hours(self, hours: str = "cpu_hours") -> float | None:
        """The compute a cost counts for this cell, in hours: GPU hours for `hours` "gpu_hours"; else CPU
        hours from compute.charged_cpu_seconds (the cell's CPU time with the suite's shared generator's fit
        charged to every strategy that samples it, whichever fitted it) where recorded, else
        compute.cpu_seconds. Never wall time: it counts the cells that ran beside this one. None where the
        cell lacks the figure."""
        if hours == "gpu_hours":
            return self.compute_number("gpu_hours")
        seconds = self.compute_number("charged_cpu_seconds")
        seconds = self.compute_number("cpu_seconds") if seconds is None else seconds
        return None if seconds is None else seconds / 3600.0

    @property
    def shared_fit_hours(self) -> float | None:
        """CPU hours of the shared generator's fit included in `cost_hours` (compute.generator_fit_cpu_seconds:
        the fit ran once per suite version and is charged alike to every cell that samples the generator);
        None where the cell samples no shared generator."""
        seconds = self.compute_number("generator_fit_cpu_seconds")
        return None if seconds is None else seconds / 3600.0

    @property
    def device_type(self) -> str:
        """'cpu' or 'cuda': the type of compute.device ('cuda:0' -> 'cuda')."""
        return str(self.compute["device"]).split(":")[0]

    @property
    def cpu(self) -> str | None:
        """The CPU model the cell ran on (hardware.cpu); None where not recorded."""
        return self.record.get("hardware", {}).get("cpu")

    # What the strategy did.
    @property
    def strategy_log(self) -> Mapping[str, Any]:
        return self.record.get("strategy_log") or {}

    @property
    def synthetic_examples(self) -> float | None:
        """Synthetic examples the strategy added (strategy_log.synthetic_examples)."""
        return finite_number(self.strategy_log.get("synthetic_examples"))

    @property
    def rounds(self) -> list[Mapping[str, Any]]:
        """The loop's rounds (strategy_log.rounds), each a mapping; none for a strategy without a loop."""
        return [rd for rd in self.strategy_log.get("rounds") or [] if isinstance(rd, Mapping)]

    # The real data the cell trained on (`real_data`: absent in older results).
    @property
    def real_data(self) -> Mapping[str, Any] | None:
        return self.record.get("real_data")

    @property
    def real_fingerprint(self) -> str | None:
        return (self.real_data or {}).get("fingerprint")

    @property
    def train_examples(self) -> float | None:
        return finite_number((self.real_data or {}).get("train_examples"))

    @property
    def test_examples(self) -> int | None:
        return (self.real_data or {}).get("test_examples")

    @property
    def reads_pool_labels(self) -> bool:
        """The strategy was given the unused pool's labels (an oracle: StrategyCaps.reads_pool_labels);
        false where the record lacks the field (older results: no strategy was given them)."""
        return bool(self.record.get("reads_pool_labels", False))

    # Provenance (`code`: required by the schema; a record made in memory may lack it).
    @property
    def git_commit(self) -> str | None:
        return self.record.get("code", {}).get("git_commit")

    @property
    def git_dirty(self) -> bool | None:
        return self.record.get("code", {}).get("git_dirty")


def scalar_metrics(results: Iterable[Result | Mapping[str, Any]]) -> dict[str, bool]:
    """Metric -> higher_is_better (as the first result that has the metric states it), sorted by name,
    for the metrics of `results` whose value is never a mapping: per-class and per-group values stay in
    the JSON (a metric may be a mapping in some results and None in others, e.g. without synthetic data)."""
    directions: dict[str, bool] = {}
    mappings: set[str] = set()
    for r in map(Result.of, results):
        for name, m in r.metrics.items():
            directions.setdefault(name, bool(m["higher_is_better"]))
            if isinstance(m["value"], dict):
                mappings.add(name)
    return {n: d for n, d in sorted(directions.items()) if n not in mappings}


def by_group(results: Iterable[Result | Mapping[str, Any]]) -> dict[GroupKey, list[Result]]:
    """Results by (suite, version, preset, dataset, budget), in the order given."""
    out: dict[GroupKey, list[Result]] = {}
    for r in map(Result.of, results):
        out.setdefault(r.group, []).append(r)
    return out


def by_family(groups: Mapping[GroupKey, Sequence[Result]]) -> dict[Family, dict[Group, list[Result]]]:
    """Groups of `by_group` by family (suite, version, preset), each family's groups by (dataset, budget),
    in the order given."""
    out: dict[Family, dict[Group, list[Result]]] = {}
    for (suite, version, preset, dataset, budget), results in groups.items():
        out.setdefault((suite, version, preset), {})[(dataset, budget)] = [Result.of(r) for r in results]
    return out


def by_strategy(results: Iterable[Result | Mapping[str, Any]]) -> dict[str, list[Result]]:
    """Results by strategy id, in the order given."""
    out: dict[str, list[Result]] = {}
    for r in map(Result.of, results):
        out.setdefault(r.strategy, []).append(r)
    return out


def by_seed(results: Iterable[Result | Mapping[str, Any]]) -> dict[int, Result]:
    """Results (of one strategy) by seed; of two with one seed, the later."""
    return {r.seed: r for r in map(Result.of, results)}


def load_results(root: Path, on_invalid: Callable[[Path, str], None] | None = None) -> Iterator[Result]:
    """`iter_results` as typed results, each knowing the file it was read from."""
    for path, record in iter_results(root, on_invalid):
        yield Result(record, path)

