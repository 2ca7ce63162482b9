"""An external package registers a strategy through an entry point, with no edit of this project:
a throwaway distribution is installed outside the repository and used from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_MODULE = '''
from dataclasses import dataclass

import numpy as np

from bench.registry import STRATEGIES
from bench.strategy import StrategyResult


@STRATEGIES.register("half_budget", kind="baseline")
@dataclass
class HalfBudget:
    """Trains on a random half of the real budget (a deliberately weak baseline)."""
    fraction: float = 0.5

    def run(self, task):
        rng = np.random.default_rng(task.seed)
        keep = rng.permutation(len(task.train))[: max(1, int(self.fraction * len(task.train)))]
        clf = task.fit(task.train.subset(np.sort(keep)))
        return StrategyResult(clf, log={"real_examples": len(keep)})
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "bench-plugin-half-budget"
version = "0.0.1"

[project.entry-points."bench.baselines"]
half_budget = "bench_plugin_half_budget"

[tool.setuptools]
py-modules = ["bench_plugin_half_budget"]
'''

SUITE = """
name: plugin-suite
version: 1
primary_metric: accuracy
datasets: [cifar10]
budgets: [4]
val_per_class: 1
test_per_class: 2
model: {name: small_cnn, params: {width: 4}}
train: {epochs: 1}
strategies: [real_only, {name: half_budget, params: {fraction: 0.5}}]
metrics: [accuracy]
seeds: [0]
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    src, site = root / "src", root / "site"
    src.mkdir()
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "bench_plugin_half_budget.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True, capture_output=True)
    assert list(site.glob("bench_plugin_half_budget-0.0.1.dist-info"))
    return site


def bench(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_plugin_strategy_is_listed(plugin_site, tmp_path):
    r = bench(plugin_site, "ls", "strategies", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert "half_budget" in names and "real_only" in names
    # Without the plug-in on the path, it is not there.
    r = subprocess.run([sys.executable, "-m", "bench", "ls", "strategies"], capture_output=True, text=True, cwd=tmp_path)
    assert "half_budget" not in r.stdout


def test_suite_runs_the_plugin_strategy(plugin_site, tmp_path):
    (tmp_path / "suite.yaml").write_text(SUITE)
    r = bench(plugin_site, "run", "--suite", "suite.yaml", "--out", "out", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "out/plugin-suite/v1/cpu/cifar10/n4/half_budget/seed0.json").read_text())
    assert result["status"] == "ok"
    assert result["config"]["strategy"] == {"id": "half_budget", "name": "half_budget", "params": {"fraction": 0.5}}
    assert result["strategy_log"]["real_examples"] == 20  # half of 4 per class x 10 classes
