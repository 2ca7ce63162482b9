"""The result store: one JSON file per cell, written atomically and validated against the declared
schema (`bench/result_schema.json`, version SCHEMA_VERSION).

Layout: <out>/<suite>/<preset>/<dataset>/<budget: n100, all or pct10>/<strategy>/seed<seed>.json

A write goes through a temporary file named TEMP_PREFIX... in the cell's folder, fsynced, renamed into
place, and the folder fsynced, so that neither an interruption nor a power loss leaves a truncated
result. Temporary files orphaned by a killed process are removed by `clean_stale_temp_files`. A record
that cannot be written where it belongs is saved under <out>/UNSAVED_DIR (or the system's temporary
folder) by `save_fallback`, so that a computed cell is never lost.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema

from bench.artifacts import PAYLOAD, write_files, write_payload
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


def validate_result(record: Any) -> None:
    """Raise BenchError with the first schema violation, e.g. 'metrics.accuracy.value: ...'."""
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(record))
    if err is not None:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise BenchError(f"result does not match schema v{SCHEMA_VERSION}: {where}: {err.message}")


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


def write_result(path: Path, record: dict[str, Any]) -> None:
    """Validate, then write atomically (bench.data.write_atomic: a temporary file named TEMP_PREFIX...,
    fsynced, renamed into place, the folder fsynced), so that neither an interruption nor a power loss
    leaves a truncated result behind. OSError (a full disk, an unwritable folder, a folder at `path`)
    propagates.

    A record carrying artifacts (bench.artifacts.PAYLOAD, from run_cell) has them taken out and written
    first, beside the result (and under <out>/.synthetic where the synthetic split is kept), and names
    them under `artifacts`; the record is validated before anything is written."""
    encode_result(record)
    files = write_payload(path, record)
    text = encode_result(record)
    write_files(files, prefix=TEMP_PREFIX)
    write_atomic(path, text.encode(), prefix=TEMP_PREFIX)


def save_fallback(out: Path, path: Path, record: dict[str, Any]) -> Path | None:
    """Save a computed record that could not be written to `path`: under <out>/UNSAVED_DIR, else in
    the system's temporary folder, as `unsaved-<the cell path with '--' for '/'>.json` (a name that
    neither resumption nor the leaderboard reads). Returns where it went, None if nowhere."""
    rel = os.path.relpath(os.path.normpath(path), os.path.normpath(out))
    name = "unsaved-" + rel.replace(os.sep, "--")
    record = {k: v for k, v in record.items() if k != PAYLOAD}  # the record, not its arrays
    text = json.dumps(json_safe(record, strict=False), indent=2) + "\n"
    for folder in (Path(out) / UNSAVED_DIR, Path(tempfile.gettempdir()) / "bench-unsaved"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / name
            target.write_text(text)
            return target
        except OSError:
            continue
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


def read_result(path: Path) -> Any:
    """The parsed JSON of a result file (not yet validated: it may be any JSON value)."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except IsADirectoryError:
        raise BenchError(f"result {path} is a folder, not a file") from None
    except OSError as exc:
        raise BenchError(f"cannot read result {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"result {path} is not valid JSON: not UTF-8 text (offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"result {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise BenchError(f"result {path} is not valid JSON: nested too deeply") from None


def read_valid_result(path: Path) -> dict[str, Any]:
    """A result file that parses and matches the schema; BenchError naming the file otherwise."""
    record = read_result(path)
    try:
        validate_result(record)
    except BenchError as exc:
        raise BenchError(f"{path}: {exc}") from None
    return record


def iter_results(root: Path, on_invalid: Callable[[Path, str], None] | None = None
                 ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every result file under `root`, validated. A damaged or schema-invalid file is a BenchError
    naming it, or, with `on_invalid`, reported to it (the path and a one-line reason) and skipped."""
    for path in sorted(Path(root).rglob("seed*.json")):
        try:
            record = read_valid_result(path)
        except BenchError as exc:
            if on_invalid is None:
                raise
            on_invalid(path, str(exc))
            continue
        yield path, record
