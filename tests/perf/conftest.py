"""Fixtures shared by the benchmarks."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from bench.benchmarks.datasets.cifar10 import FILES
from bench.data import locate


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throw-away BENCH_CACHE_DIR for the whole module. The data folder is resolved first, with the
    user's settings, and pinned through BENCH_DATA_DIR, so only the decoded-array cache moves."""
    data_folder = locate("cifar10", FILES)  # .../cifar10 (may download into the user cache, as `bench` would)
    cache_dir = tmp_path_factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA_DIR", str(data_folder.parent))
        mp.setenv("BENCH_CACHE_DIR", str(cache_dir))
        yield cache_dir
