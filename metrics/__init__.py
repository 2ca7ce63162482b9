"""Built-in metrics. Importing this package registers them."""
from __future__ import annotations

from bench.metrics import classification, fairness, groups, image_quality, robustness, table_quality  # noqa: F401
