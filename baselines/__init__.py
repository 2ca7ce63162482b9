"""Built-in baselines and controls: every strategy that is not the method. Importing this package registers them."""
from __future__ import annotations

from . import controls, dp_gan_baseline, prior_synthetic, random_synthetic, real_only, smote  # noqa: F401
