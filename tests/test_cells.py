"""Cells (bench.cells): what a cell's config records, that the configs of the committed results are
still what their suites expand to (a move of code must not make a finished result stale), and that the
runner and the executors both build on bench.cells without importing each other."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tiny_suite import GOOD

from bench.cells import expand_cells
from bench.config import load_suite

ROOT = Path(__file__).resolve().parents[1]


def test_a_strategys_own_mix_ratio_is_what_its_cells_record(tmp_path):
    """A strategy entry with its own mix_ratio (a mixing-ratio sweep in one suite) trains with it, so its
    cells record it, not the suite's; a strategy without one records the suite's, with the config (and
    hash) it had before strategies could set their own."""
    suite = tmp_path / "s.yaml"
    suite.write_text(GOOD.replace("strategies: [real_only]", (
        "strategies: [smote, {name: smote, id: smote_mix0.1, params: {mix_ratio: 0.1}}, "
        "{name: smote, id: smote_mix_same, params: {mix_ratio: 0.5}}]\n"
        "synthetic: {generator: {name: pca_gmm}, budget_per_class: 2, mix_ratio: 0.5}")))
    plain, own, same = expand_cells(load_suite(str(suite)))
    assert plain.config["strategy"]["params"]["mix_ratio"] is None
    assert plain.config["synthetic"]["mix_ratio"] == 0.5
    assert own.config["synthetic"]["mix_ratio"] == 0.1
    assert same.config["synthetic"]["mix_ratio"] == 0.5
    assert own.config["synthetic"]["budget_per_class"] == plain.config["synthetic"]["budget_per_class"] == 2


def test_every_committed_result_is_up_to_date_with_its_suite():
    """Each committed result's config hash is the hash of the cell its suite expands to now (results of an
    older suite version are left out: a version bump makes them stale on purpose)."""
    by_suite: dict[tuple, list[dict]] = {}
    for path in sorted((ROOT / "results").rglob("*.json")):
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "config" in record and "cell" in record:
            s = record["config"]["suite"]
            by_suite.setdefault((s["name"], s["version"], s["preset"]), []).append(record)
    compared, stale = 0, []
    for (name, version, preset), records in sorted(by_suite.items()):
        suite = load_suite(name, preset=preset)
        if suite.version != version:
            continue
        hashes = {(c.dataset.name, str(c.budget), c.strategy.key, c.seed): c.hash for c in expand_cells(suite)}
        for r in records:
            c = r["cell"]
            key = (c["dataset"], str(c["budget"]), c["strategy"], c["seed"])
            compared += 1
            if hashes.get(key) != r["config_hash"]:
                stale.append(f"{name}/{preset}: {key}")
    assert compared > 0
    assert stale == []


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top, in functions or for type checking alone."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_the_runner_and_the_executors_build_on_cells_and_not_on_each_other():
    executors, runner, cells = (imported_modules(ROOT / "bench" / f"{m}.py") for m in ("executors", "runner", "cells"))
    assert "bench.runner" not in executors
    assert "bench.cells" in executors and "bench.cells" in runner
    assert not {"bench.runner", "bench.executors"} & cells


def test_a_pool_worker_loads_numpy_and_torch_only_after_its_thread_settings():
    """A spawned worker imports bench.executors to find its initializer, which sets the thread variables
    before numpy and torch load: the module must load neither (bench.cells is imported where cells run)."""
    code = "import sys, bench.executors; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_shared_generator_fit_is_charged_alike_to_every_cell_that_samples_it():
    from bench.cells import _charged

    def record(cached: bool, cpu: float) -> dict:
        return {"strategy_log": {"generator": {"cached": cached, "fit_cpu_seconds": 5.0}},
                "compute": {"cpu_seconds": cpu}}

    fitted_here = _charged(record(False, 12.0))  # 5 s of the 12 were the fit
    read_from_cache = _charged(record(True, 7.0))  # the same work, the fit read from the cache
    assert fitted_here == read_from_cache == {"generator_fit_cpu_seconds": 5.0, "charged_cpu_seconds": 12.0}
    assert _charged({"strategy_log": {}, "compute": {"cpu_seconds": 3.0}}) == {}
