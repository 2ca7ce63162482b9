"""Built-in baselines: every strategy that is not the method. Importing this package registers them."""
from __future__ import annotations

from . import dp_gan_baseline, prior_synthetic, random_synthetic, real_only, smote  # noqa: F401
