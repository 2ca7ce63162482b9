"""Shared fixtures: a per-session cache folder (so tests never touch the user's cache) and a tiny
in-memory image task for fast unit tests."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bench.api import DatasetSplits, Split
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.task import Task


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    old = os.environ.get("BENCH_CACHE_DIR")
    os.environ["BENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("bench-cache"))
    yield
    if old is None:
        os.environ.pop("BENCH_CACHE_DIR", None)
    else:
        os.environ["BENCH_CACHE_DIR"] = old


def make_images(n_per_class: int, classes: int = 3, size: int = 8, seed: int = 0) -> Split:
    """Images whose class is visible: class c has a bright c-th colour channel (plus noise)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.integers(0, 80, (len(y), size, size, 3)).astype(np.uint8)
    for c in range(classes):
        x[y == c, :, :, c % 3] += 150
    return Split(x, y)


@pytest.fixture
def one_thread():
    """Small networks run fastest on one thread, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def image_maker():
    """make_images, for tests that need another number of classes or images (importing it from
    conftest would find tests/perf/conftest.py instead when both folders are collected)."""
    return make_images


@pytest.fixture
def tiny_data() -> DatasetSplits:
    return DatasetSplits(name="tiny", modality="image", classes=["r", "g", "b"],
                         train=make_images(40, seed=0), test=make_images(20, seed=1))


@pytest.fixture
def tiny_task(tiny_data: DatasetSplits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a width-4 network on 8x8 images runs fastest on one thread
    yield Task.build(tiny_data, budget=10, val_per_class=5, seed=0,
                      model=NamedSpec(name="small_cnn", params={"width": 4, "augment": False}),
                      recipe=TrainRecipe(epochs=8, batch_size=16, lr=1e-2),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="pca_gmm", params={"components": 8}),
                                              budget_per_class=5, mix_ratio=0.5))
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` are skipped where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
