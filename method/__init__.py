"""Active synthesis: the generate-and-retrain loop (active.py) with its uncertainty estimates
(uncertainty.py) and the targeting of the uncertain region (targeting.py), and the conditional
generators it samples (generators/). Importing this package registers them."""
from __future__ import annotations

from . import active, generators  # noqa: F401
