"""Built-in data sets (datasets/), task models (models/) and suites (suites/*.yaml). Importing this
package registers them; references/ holds scripts that reproduce outside numbers and registers nothing."""
from __future__ import annotations

from pathlib import Path

from bench.registry import SUITES

from . import datasets, models  # noqa: F401  (registration happens at import)

SUITES_DIR = Path(__file__).parent / "suites"

for _path in sorted(SUITES_DIR.glob("*.yaml")):
    SUITES.add(_path.stem, str(_path))
