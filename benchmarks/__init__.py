"""Built-in data sets, task models and suites. Importing this package registers them."""
from __future__ import annotations

from pathlib import Path

from bench.benchmarks import (  # noqa: F401  (registration happens at import)
    adult,
    cifar10,
    models,
    pneumoniamnist,
    taiwan_credit,
    text_data,
    text_models,
    toy,
    transactions,
    utkface,
)
from bench.registry import SUITES

SUITES_DIR = Path(__file__).parent / "suites"

for _path in sorted(SUITES_DIR.glob("*.yaml")):
    SUITES.add(_path.stem, str(_path))
