"""Built-in data sets, task models and suites. Importing this package registers them."""
from __future__ import annotations

from pathlib import Path

from bench.benchmarks import adult, cifar10, models, pneumoniamnist, taiwan_credit, toy, transactions, utkface  # noqa: F401  (registration happens at import)
from bench.registry import SUITES

SUITES_DIR = Path(__file__).parent / "suites"

for _path in sorted(SUITES_DIR.glob("*.yaml")):
    SUITES.add(_path.stem, str(_path))
