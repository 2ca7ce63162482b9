"""`bench ls KIND`: the registered entries of one kind, each with its capabilities."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.arguments import DEFAULT_RESULTS

KINDS = ("suites", "datasets", "models", "generators", "strategies", "metrics")  # bench.registry.REGISTRIES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ls = subparsers.add_parser("ls", help="list registered entries")
    ls.add_argument("kind", choices=list(KINDS))


def cmd(args: argparse.Namespace) -> int:
    from bench.registry import REGISTRIES

    reg = REGISTRIES[args.kind]
    if args.kind == "suites":
        return list_suites(reg)
    for name in reg.names():
        detail = ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                           for k, v in reg.meta(name).items())
        print(f"{name}\t{detail}".rstrip())
    return 0


def list_suites(suites: Any) -> int:
    """Each suite's name, version, cells of its default preset, the CPU-hours its committed cells took
    (results/, where present) and description, read from the YAML files alone (no plug-in is imported)."""
    from bench.config import DEFAULT_PRESET, deep_merge, read_suite_file
    from bench.errors import BenchError

    rows = [("suite", "version", "cells", "CPU-h", "description")]
    for name in suites.names():
        try:
            raw = read_suite_file(Path(suites.get(name)))
        except BenchError as exc:
            rows.append((name, "?", "?", "?", f"unreadable: {exc}"))
            continue
        raw = deep_merge(raw, (raw.get("presets") or {}).get(DEFAULT_PRESET) or {})
        # one cell per data set x budget x strategy x seed (the suite's own lists; `bench validate` checks them)
        cells = 1
        for key in ("datasets", "budgets", "strategies", "seeds"):
            cells *= len(raw.get(key) or []) if isinstance(raw.get(key), list) else 0
        version = raw.get("version")
        hours = committed_cpu_hours(DEFAULT_RESULTS, name, version, DEFAULT_PRESET)
        rows.append((name, str(version), str(cells), "-" if hours is None else f"{hours:.2f}",
                     " ".join(str(raw.get("description") or "").split())))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return 0


def committed_cpu_hours(results: Path, suite: str, version: Any, preset: str) -> float | None:
    """The CPU-hours (user + system CPU of the cell's process) the committed cells of this suite version
    and preset took in all; None where none is committed. An estimate: each file is read as strict JSON
    against the schema (bench.results), without the checks that import the plug-ins (metric ranges); a
    file that fails is left out."""
    from bench.errors import BenchError
    from bench.results import read_result, validate_result

    folder = results / suite / f"v{version}" / preset
    if not folder.is_dir():
        return None
    hours = []
    for path in sorted(folder.rglob("seed*.json")):
        try:
            record = read_result(path)
            validate_result(record)
        except BenchError:
            continue
        hours.append(record["compute"].get("cpu_hours"))
    hours = [h for h in hours if isinstance(h, (int, float))]
    return float(sum(hours)) if hours else None
