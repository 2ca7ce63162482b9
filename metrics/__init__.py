"""Built-in metrics. Importing this package registers them."""
from __future__ import annotations

from bench.metrics import classification, groups, image_quality, robustness  # noqa: F401
