"""Active synthesis: uncertainty estimation, targeting of the uncertain region, the generate-and-
retrain loop and its conditional generators. Importing this package registers them."""
from __future__ import annotations

from bench.method import active, diffusion, dp_gan, generators, sd_lora, sdv_generators, text_lm  # noqa: F401
