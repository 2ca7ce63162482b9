"""Built-in task models: networks.py (small_cnn for images, mlp for tables and vectors) and minilm.py
(the text models on the frozen MiniLM encoder). Importing this package registers them."""
from __future__ import annotations

from . import minilm, networks  # noqa: F401  (registration happens at import)
