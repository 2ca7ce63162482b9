"""Built-in baselines. Importing this package registers them."""
from __future__ import annotations

from bench.baselines import dp_gan, prior_synthetic, random_synthetic, real_only, smote  # noqa: F401
