"""`bench validate FILE`: check a suite file (every preset resolves: schema, components, their
compatibility, the cells) or a result file (as every command reads one: bench.results.read_valid_result)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.arguments import add_suite_options, suite_overrides
from bench.errors import BenchError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    v = subparsers.add_parser("validate", help="check a suite file or a result file")
    v.add_argument("file", type=Path)
    add_suite_options(v)


def cmd(args: argparse.Namespace) -> int:
    from bench.config import DEFAULT_PRESET, load_suite, read_suite_file
    from bench.results import read_valid_result

    path: Path = args.file
    if path.is_dir():
        raise BenchError(f"{path} is a folder: `bench validate` checks one file, a suite (.yaml) or a result (.json)")
    if not path.is_file():
        raise BenchError(f"{path} does not exist")
    overrides = suite_overrides(args)
    if path.suffix == ".json":
        if overrides or args.sd_path is not None or args.lm_path is not None:
            raise BenchError(f"{path} is a result: --set, --sd-path and --lm-path apply to a suite (.yaml)")
        # the one strict reader; a file at its place in a results folder (seven parts below it) is also checked
        # against the cell its path names and its artifacts
        record = read_valid_result(path, root=path.parents[6] if len(path.parts) >= 8 else None)
        print(f"{path}: valid result (schema v{record['schema_version']})")
        return 0
    if path.suffix not in (".yaml", ".yml"):
        raise BenchError(f"{path}: expected a suite (.yaml) or a result (.json)")
    declared = read_suite_file(path).get("presets") or {}
    if not isinstance(declared, dict) or not all(isinstance(p, str) for p in declared):
        raise BenchError(f"{path}: `presets` must be a mapping of preset name to overrides")
    presets = [DEFAULT_PRESET, *sorted(p for p in declared if p != DEFAULT_PRESET)]
    from bench.cells import expand_cells

    counts = []
    for p in presets:  # each must resolve
        suite = load_suite(str(path), preset=p, model_path=args.sd_path, lm_path=args.lm_path, overrides=overrides)
        counts.append(f"{p}: {len(expand_cells(suite))} cells")
    print(f"{path}: valid suite ({'; '.join(counts)})")
    return 0
