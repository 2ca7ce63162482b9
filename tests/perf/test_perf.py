"""Throughput benchmarks (pytest-benchmark): CIFAR-10 loading and task-model training, the harness
against bare PyTorch.

What is measured
  * `test_cifar10_load_cached`: `bench.benchmarks.datasets.cifar10.Cifar10().load()` from the decoded-array cache
    (the first load, in a fixture, decodes the PNGs into a throw-away BENCH_CACHE_DIR so that the
    user's cache is not touched). Reported as images/s (train + test images per second).
    `test_cifar10_load_cached_and_read` adds a copy of every image into memory, so that a lazy
    (memory-mapped) load cannot hide the cost of reading the data.
  * `test_train_epoch_harness` and `test_train_epoch_bare`, in one benchmark group on the same
    2,048 real CIFAR-10 training images (uint8): one epoch of the cifar10 suite's task model (SmallCNN,
    width 32) with the suite's CPU recipe, read from benchmarks/suites/cifar10.yaml (SGD with Nesterov
    momentum, lr 0.05, weight decay 5e-4, one-cycle cosine schedule stepped per batch, label smoothing
    0.1, batch 128, channels_last, random crop + flip), (a) through `bench.training.train_epoch` with the
    task model's `prepare_batch`, and (b) through the minimal hand-written PyTorch loop doing the same
    work. Reported as images/s and achieved GFLOP/s (conv/matmul FLOPs of forward + backward, counted by
    torch's FlopCounterMode).
    Precision: float32, unless the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX; see
    conftest.native_bf16): there both loops run under bfloat16 autocast, which pays only there (on an
    AVX2 CPU a step is about 10x slower than in float32). BENCH_PERF_BF16=1 or 0 forces either; the
    summary and extra_info say which ran.
  * `test_harness_vs_bare_ratio` (runs last): harness images/s / bare images/s, from each one's best
    round, must be >= 0.90. It asserts only under `--benchmark-only`, the benchmark run.

How to run
  tox -e perf                                    # pytest tests/perf --benchmark-only ...
  pytest tests/perf/test_perf.py --benchmark-only -s
Without `--benchmark-only` the benchmarks run at tiny sizes (256 training images, 2 batches); under
`--benchmark-disable` (`tox -e test`, CI) each runs once, untimed, so that an API change fails CI. The
summary is then printed from those calls and no speed target is asserted (conftest.py says more).
`--benchmark-skip` skips them all. The data files are found as `bench` finds them (BENCH_DATA_DIR, the
shared data folder, or the user cache, downloading if needed).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from perf_timing import timed
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.api import DatasetInfo, DatasetSplits, Split
from bench.benchmarks.datasets.cifar10 import Cifar10
from bench.benchmarks.models.networks import SmallCNN, SmallCNNNet, random_crop_flip
from bench.config import TrainRecipe, load_suite
from bench.training import make_optimizer, make_scheduler, train_epoch

SUITE = "cifar10"  # the suite whose task model and CPU training recipe are timed (its default preset)
SEED = 0
MIN_RATIO = 0.90  # harness images/s must be at least this fraction of bare PyTorch's
TRAIN_GROUP = "cifar10-train-epoch"


@dataclass(frozen=True)
class Sizes:
    n_train: int  # images per timed epoch
    epoch_rounds: int  # timed epochs per training benchmark (after warmup_rounds untimed ones)
    warmup_rounds: int
    load_rounds: int  # timed loads per load benchmark (after one untimed one)


FULL = Sizes(n_train=2048, epoch_rounds=10, warmup_rounds=1, load_rounds=5)  # 16 full batches of 128
TINY = Sizes(n_train=256, epoch_rounds=1, warmup_rounds=0, load_rounds=1)  # --benchmark-disable: one call each

# Filled by the benchmarks, read by test_harness_vs_bare_ratio: name -> {metric: value}.
_RESULTS: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sizes(tiny: bool) -> Sizes:
    return TINY if tiny else FULL


@pytest.fixture(scope="module")
def recipe(bf16_autocast: bool) -> TrainRecipe:
    """The suite's CPU training recipe, with bf16 autocast only where it pays (module docstring)."""
    return load_suite(SUITE).train.model_copy(update={"bf16_autocast": bf16_autocast})


@pytest.fixture(scope="module")
def spec() -> SmallCNN:
    model = load_suite(SUITE).model
    assert model.name == "small_cnn", f"the {SUITE} suite's model is {model.name}: update this benchmark"
    return SmallCNN(**model.params)


@pytest.fixture(scope="module")
def cifar10(cache_env: Path) -> DatasetSplits:
    """The warm-up load: decodes the PNGs into the cache, unless (tiny runs) another test already did."""
    decoded_before = any((cache_env / "decoded").glob("cifar10-*"))
    t0 = time.perf_counter()
    data = Cifar10().load()
    if not decoded_before:
        _RESULTS["load_first"] = {"seconds": time.perf_counter() - t0}  # s, decode + cache write
    assert any((cache_env / "decoded").glob("cifar10-*")), "the first load did not write the cache"
    return data


@pytest.fixture(scope="module")
def info(cifar10: DatasetSplits) -> DatasetInfo:
    return DatasetInfo.of(cifar10)


@pytest.fixture(scope="module")
def train_subset(cifar10: DatasetSplits, sizes: Sizes) -> Split:
    """sizes.n_train real training images, uint8 (N, 32, 32, 3), a fixed random choice."""
    idx = np.random.default_rng(SEED).choice(len(cifar10.train), sizes.n_train, replace=False)
    return cifar10.train.subset(np.sort(idx))


@pytest.fixture(scope="module")
def flops_per_image(train_subset: Split, info: DatasetInfo, spec: SmallCNN, recipe: TrainRecipe) -> float:
    """Conv/matmul FLOPs of one forward + backward pass per training image (FLOP/image), counted on
    one training batch exactly as the timed loops run it."""
    torch.manual_seed(SEED)
    net = spec.build(train_subset, info).to(memory_format=torch.channels_last)
    net.train()
    X = spec.to_tensor(train_subset.x)[: recipe.batch_size]
    Y = torch.as_tensor(train_subset.y[: recipe.batch_size], dtype=torch.long)
    xb = spec.prepare_batch(X, train=True, generator=torch.Generator().manual_seed(SEED))
    xb = xb.contiguous(memory_format=torch.channels_last)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=recipe.bf16_autocast):
            loss = F.cross_entropy(net(xb), Y, label_smoothing=recipe.label_smoothing)
        loss.backward()
    return counter.get_total_flops() / len(Y)


# ---------------------------------------------------------------------------------------- helpers




def _record(benchmark: Any, name: str, images: int, seconds: list[float],
            flops_per_image: float | None = None, **extra: float) -> None:
    """Put images/s (and GFLOP/s) of the best and the median round into extra_info and _RESULTS: from
    pytest-benchmark's rounds, or (--benchmark-disable) from the single untimed call in `seconds`."""
    if benchmark.stats is not None:
        best, median, timed = benchmark.stats.stats.min, benchmark.stats.stats.median, 1.0
    else:
        assert seconds, f"{name}: the benchmarked function did not run"
        best = median = seconds[-1]
        timed = 0.0
    out: dict[str, float] = {
        "images": float(images),
        "best_s": best,  # s per round
        "median_s": median,  # s per round
        "images_per_s": images / best,  # best round
        "images_per_s_median": images / median,
        "timed": timed,  # 0: one untimed call (--benchmark-disable), not a measurement
        **extra,
    }
    if flops_per_image is not None:
        out["gflop_per_image"] = flops_per_image / 1e9  # GFLOP, forward + backward
        out["gflop_per_s"] = flops_per_image * images / best / 1e9  # best round
        out["gflop_per_s_median"] = flops_per_image * images / median / 1e9
    benchmark.extra_info.update(out)
    _RESULTS[name] = out


def _bare_epoch(net: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                X: torch.Tensor, Y: torch.Tensor, gen: torch.Generator, batch: int, pad: int,
                label_smoothing: float, bf16: bool) -> float:
    """The minimal PyTorch epoch: shuffle, uint8 -> float in [0, 1], crop + flip, channels_last,
    (bf16 autocast where it pays), label-smoothed cross-entropy, SGD step, scheduler step."""
    net.train()
    order = torch.randperm(len(Y), generator=gen)
    total = torch.zeros(())
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        xb = random_crop_flip(X[idx].float().div_(255.0), pad, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(xb), Y[idx], label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.detach() * len(idx)
    return float(total) / len(Y)


# ------------------------------------------------------------------------------------- benchmarks


@pytest.mark.benchmark(group="cifar10-load")
def test_cifar10_load_cached(benchmark: Any, cifar10: DatasetSplits, sizes: Sizes) -> None:
    n_images = len(cifar10.train) + len(cifar10.test)  # 60,000
    seconds: list[float] = []
    data = benchmark.pedantic(timed(lambda: Cifar10().load(), seconds), rounds=sizes.load_rounds, warmup_rounds=1)
    assert data.train.x.shape == cifar10.train.x.shape and data.train.x.dtype == np.uint8
    assert np.array_equal(data.test.y, cifar10.test.y)
    _record(benchmark, "load", n_images, seconds)
    if "load_first" in _RESULTS:
        benchmark.extra_info["first_load_s"] = _RESULTS["load_first"]["seconds"]  # s, PNG decode + cache write


@pytest.mark.benchmark(group="cifar10-load")
def test_cifar10_load_cached_and_read(benchmark: Any, cifar10: DatasetSplits, sizes: Sizes) -> None:
    """load() plus a copy of every image into memory: the cost of actually reading the data, which a
    lazy (memory-mapped) load defers to first use."""
    n_images = len(cifar10.train) + len(cifar10.test)  # 60,000

    def load_and_read() -> tuple[np.ndarray, np.ndarray]:
        data = Cifar10().load()
        return np.array(data.train.x), np.array(data.test.x)  # in-memory copies, uint8

    seconds: list[float] = []
    x_train, x_test = benchmark.pedantic(timed(load_and_read, seconds), rounds=sizes.load_rounds, warmup_rounds=1)
    assert np.array_equal(x_test, cifar10.test.x) and x_train.shape == cifar10.train.x.shape
    _record(benchmark, "load_read", n_images, seconds)


@pytest.mark.benchmark(group=TRAIN_GROUP)
def test_train_epoch_harness(benchmark: Any, train_subset: Split, info: DatasetInfo, spec: SmallCNN,
                             recipe: TrainRecipe, flops_per_image: float, sizes: Sizes) -> None:
    torch.manual_seed(SEED)
    module = spec.build(train_subset, info).to(memory_format=torch.channels_last)
    opt = make_optimizer(recipe, module.parameters())
    X = spec.to_tensor(train_subset.x)  # uint8 (N, 3, 32, 32)
    Y = torch.as_tensor(train_subset.y, dtype=torch.long)
    steps = -(-len(Y) // recipe.batch_size)  # batches per epoch
    assert sizes.warmup_rounds + sizes.epoch_rounds <= recipe.epochs, "the schedule would run out of steps"
    sched = make_scheduler(recipe, opt, steps_per_epoch=steps)
    gen = torch.Generator().manual_seed(SEED)

    def epoch() -> float:
        order = torch.randperm(len(Y), generator=gen)
        return train_epoch(module, opt, spec, X, Y, order, recipe.batch_size, gen, recipe, scheduler=sched)

    seconds: list[float] = []
    loss = benchmark.pedantic(timed(epoch, seconds), rounds=sizes.epoch_rounds, warmup_rounds=sizes.warmup_rounds)
    assert np.isfinite(loss)
    _record(benchmark, "harness", len(Y), seconds, flops_per_image, bf16_autocast=float(recipe.bf16_autocast))


@pytest.mark.benchmark(group=TRAIN_GROUP)
def test_train_epoch_bare(benchmark: Any, train_subset: Split, info: DatasetInfo, spec: SmallCNN,
                          recipe: TrainRecipe, flops_per_image: float, sizes: Sizes) -> None:
    if recipe.optimizer != "sgd" or recipe.lr_schedule == "constant" or not spec.augment:
        pytest.fail(f"the bare loop is written for the {SUITE} suite's SGD + one-cycle recipe with augmentation; "
                    f"the suite now has {recipe.optimizer}, {recipe.lr_schedule}, augment {spec.augment}: update it")
    X = torch.from_numpy(np.asarray(train_subset.x)).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, 32, 32)
    Y = torch.from_numpy(np.asarray(train_subset.y)).long()
    xf = X.float() / 255.0
    torch.manual_seed(SEED)  # the same initial weights as the harness's network
    net = SmallCNNNet(3, info.num_classes, spec.width, spec.dropout, xf.mean(dim=(0, 2, 3)), xf.std(dim=(0, 2, 3)))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    steps = -(-len(Y) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps, pct_start=recipe.warmup,
        anneal_strategy="cos" if recipe.lr_schedule == "cosine" else "linear", cycle_momentum=False)
    gen = torch.Generator().manual_seed(SEED)

    seconds: list[float] = []
    loss = benchmark.pedantic(timed(_bare_epoch, seconds),
                              args=(net, opt, sched, X, Y, gen, recipe.batch_size, spec.crop_pad,
                                    recipe.label_smoothing, recipe.bf16_autocast),
                              rounds=sizes.epoch_rounds, warmup_rounds=sizes.warmup_rounds)
    assert np.isfinite(loss)
    _record(benchmark, "bare", len(Y), seconds, flops_per_image, bf16_autocast=float(recipe.bf16_autocast))


@pytest.mark.benchmark(group="summary")
def test_harness_vs_bare_ratio(benchmark: Any, tiny: bool, check_speed: bool,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the two training benchmarks (file order) and prints the summary. The speed target is
    checked only under --benchmark-only; under --benchmark-disable the summary comes from single untimed
    calls at tiny sizes and only says that both loops ran."""
    if "harness" not in _RESULTS or "bare" not in _RESULTS:
        pytest.skip("the training benchmarks did not both run (deselected or failed)")
    harness, bare = _RESULTS["harness"], _RESULTS["bare"]
    ratio: float = benchmark.pedantic(lambda: harness["images_per_s"] / bare["images_per_s"], rounds=1)
    median_ratio = harness["images_per_s_median"] / bare["images_per_s_median"]
    benchmark.extra_info.update({"ratio": ratio, "ratio_median": median_ratio, "torch_threads": torch.get_num_threads(),
                                 "bf16_autocast": harness["bf16_autocast"]})

    precision = "bf16 autocast" if harness["bf16_autocast"] else "float32"
    how = "best round; median in brackets" if not tiny else "TINY RUN (no --benchmark-only): not a measurement"
    lines = ["", f"perf summary ({how}; {precision}; torch threads {torch.get_num_threads()})"]
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

    if not check_speed:
        return  # the speed target is checked only in the full-size benchmark run (--benchmark-only)
    assert ratio >= MIN_RATIO, (
        f"harness trains at {harness['images_per_s']:.0f} images/s, {ratio:.3f} of bare PyTorch's "
        f"{bare['images_per_s']:.0f} images/s (target >= {MIN_RATIO})"
    )
