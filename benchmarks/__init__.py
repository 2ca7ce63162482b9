"""Built-in data sets (datasets/), task models (models/), suites (suites/*.yaml) and reference scripts
(references/). Importing this package registers the suites alone (their YAML files): the data sets and
models register when their sub-packages are imported, each through its own entry point (pyproject.toml),
so that naming a suite imports no data set, model or library."""
from __future__ import annotations

from pathlib import Path

from bench.registry import SUITES

SUITES_DIR = Path(__file__).parent / "suites"

for _path in sorted(SUITES_DIR.glob("*.yaml")):
    SUITES.add(_path.stem, str(_path))
