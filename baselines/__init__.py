"""Built-in baselines. Importing this package registers them."""
from __future__ import annotations

from baselines import real_only  # noqa: F401
