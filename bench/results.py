"""The result store: one JSON file per cell, written atomically and validated against the declared
schema (`bench/result_schema.json`, version SCHEMA_VERSION).

Layout: <out>/<suite>/<preset>/<dataset>/n<budget>/<strategy>/seed<seed>.json
"""
from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import jsonschema

from bench.errors import BenchError

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("result_schema.json")


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def cell_path(out: Path, suite: str, preset: str, dataset: str, budget: int, strategy: str, seed: int) -> Path:
    return out / suite / preset / dataset / f"n{budget}" / strategy / f"seed{seed}.json"


def validate_result(record: Any) -> None:
    """Raise BenchError with the first schema violation, e.g. 'metrics.accuracy.value: ...'."""
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(record))
    if err is not None:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise BenchError(f"result does not match schema v{SCHEMA_VERSION}: {where}: {err.message}")


def write_result(path: Path, record: dict[str, Any]) -> None:
    """Validate, then write through a temporary file in the same folder and rename it into place,
    so that an interrupted write never leaves a truncated result behind."""
    text = json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n"
    validate_result(json.loads(text))  # validate what lands on disk (numpy scalars become JSON numbers)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(o: Any) -> Any:
    """Plain JSON types: numpy/torch scalars and arrays become numbers and lists, and a non-finite
    float becomes null (JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):  # numpy / torch scalars and arrays
        return json_safe(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if o is None or isinstance(o, (str, int, float, bool)):
        return o
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_result(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except OSError as exc:
        raise BenchError(f"cannot read result {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"result {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return record


def iter_results(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every result file under `root`, validated; a damaged file is an error naming it."""
    for path in sorted(Path(root).rglob("seed*.json")):
        record = read_result(path)
        try:
            validate_result(record)
        except BenchError as exc:
            raise BenchError(f"{path}: {exc}") from None
        yield path, record
