"""Throughput benchmarks (pytest-benchmark): CIFAR-10 loading and task-model training, the harness
against bare PyTorch.

What is measured
  * `test_cifar10_load_cached`: `bench.benchmarks.datasets.cifar10.Cifar10().load()` from the decoded-array cache
    (the first load, in a fixture, decodes the PNGs into a throw-away BENCH_CACHE_DIR so that the
    user's cache is not touched). Reported as images/s (train + test images per second).
    `test_cifar10_load_cached_and_read` adds a copy of every image into memory, so that a lazy
    (memory-mapped) load cannot hide the cost of reading the data.
  * `test_train_epoch_harness` and `test_train_epoch_bare`, in one benchmark group on the same
    2,048 real CIFAR-10 training images (uint8): one epoch of SmallCNN (width 32) with the cifar10
    suite's recipe (Adam lr 3e-4, batch 128, channels_last, bfloat16 autocast, random crop + flip),
    (a) through `bench.training.train_epoch` with the task model's `prepare_batch`, and (b) through
    the minimal hand-written PyTorch loop doing the same work. Reported as images/s and achieved
    GFLOP/s (conv/matmul FLOPs of forward + backward, counted by torch's FlopCounterMode).
  * `test_harness_vs_bare_ratio` (runs last): harness images/s / bare images/s, from each one's best
    round, must be >= 0.90. It asserts only under `--benchmark-only`, the benchmark run.

How to run
  tox -e perf                                    # pytest tests/perf --benchmark-only ...
  pytest tests/perf --benchmark-only -s          # the same, directly
Plain test runs pass `--benchmark-skip`, which skips every test here (they are also marked `slow`,
so `-m "not slow"` deselects them). The data files are found as
`bench` finds them (BENCH_DATA_DIR, the shared data folder, or the user cache, downloading if needed).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.api import DatasetSplits, Split
from bench.benchmarks.datasets.cifar10 import Cifar10
from bench.benchmarks.models.networks import SmallCNN, SmallCNNNet, random_crop_flip
from bench.config import TrainRecipe
from bench.training import make_optimizer, train_epoch

pytestmark = pytest.mark.slow

# The cifar10 suite's cpu settings (benchmarks/suites/cifar10.yaml).
RECIPE = TrainRecipe(optimizer="adam", lr=3e-4, batch_size=128, channels_last=True, bf16_autocast=True)
SPEC = SmallCNN(width=32, dropout=0.5, augment=True, crop_pad=4)
NUM_CLASSES = 10
N_TRAIN = 2048  # images per timed epoch: 16 full batches of 128
SEED = 0
EPOCH_ROUNDS = 10  # timed epochs per training benchmark (after WARMUP_ROUNDS untimed ones)
WARMUP_ROUNDS = 1
LOAD_ROUNDS = 5
MIN_RATIO = 0.90  # harness images/s must be at least this fraction of bare PyTorch's
TRAIN_GROUP = "cifar10-train-epoch"

# Filled by the benchmarks, read by test_harness_vs_bare_ratio: name -> {metric: value}.
_RESULTS: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cifar10(cache_env: Path) -> DatasetSplits:
    """The warm-up load: decodes the PNGs into the (temporary) cache."""
    t0 = time.perf_counter()
    data = Cifar10().load()
    _RESULTS["load_first"] = {"seconds": time.perf_counter() - t0}  # s, decode + cache write
    assert os.environ["BENCH_CACHE_DIR"] == str(cache_env)
    assert any((cache_env / "decoded").glob("cifar10-*")), "the first load did not write the cache"
    return data


@pytest.fixture(scope="module")
def train_subset(cifar10: DatasetSplits) -> Split:
    """N_TRAIN real training images, uint8 (N, 32, 32, 3), a fixed random choice."""
    idx = np.random.default_rng(SEED).choice(len(cifar10.train), N_TRAIN, replace=False)
    return cifar10.train.subset(np.sort(idx))


@pytest.fixture(scope="module")
def flops_per_image(train_subset: Split) -> float:
    """Conv/matmul FLOPs of one forward + backward pass per training image (FLOP/image), counted on
    one training batch exactly as the timed loops run it."""
    torch.manual_seed(SEED)
    net = SPEC.build(train_subset, NUM_CLASSES).to(memory_format=torch.channels_last)
    net.train()
    X = SPEC.to_tensor(train_subset.x)[: RECIPE.batch_size]
    Y = torch.as_tensor(train_subset.y[: RECIPE.batch_size], dtype=torch.long)
    xb = SPEC.prepare_batch(X, train=True, generator=torch.Generator().manual_seed(SEED))
    xb = xb.contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(xb), Y)
        loss.backward()
    return counter.get_total_flops() / len(Y)


# ---------------------------------------------------------------------------------------- helpers


def _record(benchmark: Any, name: str, images: int, flops_per_image: float | None = None) -> None:
    """Put images/s (and GFLOP/s) of the best and the median round into extra_info and _RESULTS."""
    if benchmark.stats is None:  # --benchmark-disable: the target ran once, untimed
        return
    stats = benchmark.stats.stats
    out: dict[str, float] = {
        "images": float(images),
        "best_s": stats.min,  # s per round
        "median_s": stats.median,  # s per round
        "images_per_s": images / stats.min,  # best round
        "images_per_s_median": images / stats.median,
    }
    if flops_per_image is not None:
        out["gflop_per_image"] = flops_per_image / 1e9  # GFLOP, forward + backward
        out["gflop_per_s"] = flops_per_image * images / stats.min / 1e9  # best round
        out["gflop_per_s_median"] = flops_per_image * images / stats.median / 1e9
    benchmark.extra_info.update(out)
    _RESULTS[name] = out


def _bare_epoch(net: nn.Module, opt: torch.optim.Optimizer, X: torch.Tensor, Y: torch.Tensor,
                gen: torch.Generator) -> None:
    """The minimal PyTorch epoch: shuffle, uint8 -> float in [0, 1], crop + flip, channels_last,
    bf16 autocast, Adam step."""
    net.train()
    order = torch.randperm(len(Y), generator=gen)
    for start in range(0, len(order), 128):
        idx = order[start : start + 128]
        xb = random_crop_flip(X[idx].float().div_(255.0), 4, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(xb), Y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


# ------------------------------------------------------------------------------------- benchmarks


@pytest.mark.benchmark(group="cifar10-load")
def test_cifar10_load_cached(benchmark: Any, cifar10: DatasetSplits) -> None:
    n_images = len(cifar10.train) + len(cifar10.test)  # 60,000
    data = benchmark.pedantic(lambda: Cifar10().load(), rounds=LOAD_ROUNDS, warmup_rounds=1)
    assert data.train.x.shape == cifar10.train.x.shape and data.train.x.dtype == np.uint8
    assert np.array_equal(data.test.y, cifar10.test.y)
    _record(benchmark, "load", n_images)
    benchmark.extra_info["first_load_s"] = _RESULTS["load_first"]["seconds"]  # s, PNG decode + cache write


@pytest.mark.benchmark(group="cifar10-load")
def test_cifar10_load_cached_and_read(benchmark: Any, cifar10: DatasetSplits) -> None:
    """load() plus a copy of every image into memory: the cost of actually reading the data, which a
    lazy (memory-mapped) load defers to first use."""
    n_images = len(cifar10.train) + len(cifar10.test)  # 60,000

    def load_and_read() -> tuple[np.ndarray, np.ndarray]:
        data = Cifar10().load()
        return np.array(data.train.x), np.array(data.test.x)  # in-memory copies, uint8

    x_train, x_test = benchmark.pedantic(load_and_read, rounds=LOAD_ROUNDS, warmup_rounds=1)
    assert np.array_equal(x_test, cifar10.test.x) and x_train.shape == cifar10.train.x.shape
    _record(benchmark, "load_read", n_images)


@pytest.mark.benchmark(group=TRAIN_GROUP)
def test_train_epoch_harness(benchmark: Any, train_subset: Split, flops_per_image: float) -> None:
    torch.manual_seed(SEED)
    module = SPEC.build(train_subset, NUM_CLASSES).to(memory_format=torch.channels_last)
    opt = make_optimizer(RECIPE, module.parameters())
    X = SPEC.to_tensor(train_subset.x)  # uint8 (N, 3, 32, 32)
    Y = torch.as_tensor(train_subset.y, dtype=torch.long)
    gen = torch.Generator().manual_seed(SEED)

    def epoch() -> float:
        order = torch.randperm(len(Y), generator=gen)
        return train_epoch(module, opt, SPEC, X, Y, order, RECIPE.batch_size, gen, RECIPE)

    loss = benchmark.pedantic(epoch, rounds=EPOCH_ROUNDS, warmup_rounds=WARMUP_ROUNDS)
    assert np.isfinite(loss)
    _record(benchmark, "harness", len(Y), flops_per_image)


@pytest.mark.benchmark(group=TRAIN_GROUP)
def test_train_epoch_bare(benchmark: Any, train_subset: Split, flops_per_image: float) -> None:
    X = torch.from_numpy(train_subset.x).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, 32, 32)
    Y = torch.from_numpy(train_subset.y).long()
    xf = X.float() / 255.0
    torch.manual_seed(SEED)  # the same initial weights as the harness's network
    net = SmallCNNNet(3, NUM_CLASSES, 32, 0.5, xf.mean(dim=(0, 2, 3)), xf.std(dim=(0, 2, 3)))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(SEED)

    benchmark.pedantic(_bare_epoch, args=(net, opt, X, Y, gen), rounds=EPOCH_ROUNDS, warmup_rounds=WARMUP_ROUNDS)
    _record(benchmark, "bare", len(Y), flops_per_image)


@pytest.mark.benchmark(group="summary")
def test_harness_vs_bare_ratio(benchmark: Any, request: pytest.FixtureRequest,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the two training benchmarks (file order). A speed target: checked only under
    --benchmark-only."""
    if not request.config.getoption("benchmark_only"):
        pytest.skip("the speed target is checked only in the benchmark run (--benchmark-only)")
    if "harness" not in _RESULTS or "bare" not in _RESULTS:
        pytest.skip("the training benchmarks did not both run (deselected, failed or --benchmark-disable)")
    harness, bare = _RESULTS["harness"], _RESULTS["bare"]
    ratio: float = benchmark.pedantic(lambda: harness["images_per_s"] / bare["images_per_s"], rounds=1)
    median_ratio = harness["images_per_s_median"] / bare["images_per_s_median"]
    benchmark.extra_info.update({"ratio": ratio, "ratio_median": median_ratio, "torch_threads": torch.get_num_threads()})

    lines = ["", f"perf summary (best round; median in brackets; torch threads {torch.get_num_threads()})"]
    if "load_first" in _RESULTS:
        lines.append(f"  {'cifar10 first load':27s}: {_RESULTS['load_first']['seconds']:.1f} s (PNG decode + cache write)")
    for name, label in (("load", "load() from cache"), ("load_read", "load() + read all")):
        if name in _RESULTS:
            r = _RESULTS[name]
            lines.append(f"  {'cifar10 ' + label:27s}: {r['best_s'] * 1e3:.1f} ms ({r['median_s'] * 1e3:.1f} ms) for "
                         f"{r['images']:,.0f} images = {r['images_per_s']:,.0f} images/s")
    for name in ("harness", "bare"):
        r = _RESULTS[name]
        lines.append(f"  {'train epoch, ' + name:27s}: {r['best_s']:.3f} s ({r['median_s']:.3f} s) = "
                     f"{r['images_per_s']:,.0f} images/s ({r['images_per_s_median']:,.0f}), "
                     f"{r['gflop_per_s']:.1f} GFLOP/s ({r['gflop_per_s_median']:.1f}) "
                     f"at {r['gflop_per_image']:.3f} GFLOP/image")
    lines.append(f"  {'harness / bare images/s':27s}: {ratio:.3f} ({median_ratio:.3f}); target >= {MIN_RATIO:.2f}")
    with capsys.disabled():
        print("\n".join(lines))

    assert ratio >= MIN_RATIO, (
        f"harness trains at {harness['images_per_s']:.0f} images/s, {ratio:.3f} of bare PyTorch's "
        f"{bare['images_per_s']:.0f} images/s (target >= {MIN_RATIO})"
    )
