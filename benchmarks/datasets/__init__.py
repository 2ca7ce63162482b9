"""Built-in data sets, one file each (text_corpora.py: imdb, pubmedqa, medqa). Importing this package
registers them."""
from __future__ import annotations

from . import (  # noqa: F401  (registration happens at import)
    adult,
    cifar10,
    pneumoniamnist,
    taiwan_credit,
    text_corpora,
    toy_pockets,
    transactions,
    utkface,
)
