"""Built-in metrics. Importing this package registers them."""
from __future__ import annotations

from . import (  # noqa: F401
    classification,
    fairness,
    groups,
    image_quality,
    robustness,
    shift,
    table_quality,
    text_quality,
)
