"""Throughput benchmarks (pytest-benchmark): MC dropout scoring of the 10,000 CIFAR-10 test images,
the fast path (backbone once, dropout head T times) against a deterministic forward pass and against
T full forward passes.

What is measured, in one benchmark group on the official CIFAR-10 test split (10,000 uint8 images),
with SmallCNN (width 32, dropout 0.5) and the cifar10 suite's inference settings (channels_last, eval
batch 1,000), in float32 unless the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX; see
conftest.native_bf16): bfloat16 autocast pays only there (on an AVX2 CPU it is several times slower than
float32). BENCH_PERF_BF16=1 or 0 forces either; the summary and extra_info say which ran. The network
is freshly initialised, not trained: the timing does not depend on the weights. Its normalisation
statistics come from 1,000 training images (the suite's real-data budget), as `SmallCNN.build` reads them.
  * `test_forward_deterministic`: one deterministic forward pass, `clf.predict_proba(x)`.
  * `test_mc_dropout_fast_t50`: `mc_dropout(clf, x, passes=50, fast=True)`: SmallCNN's dropout sits
    only in its `head`, so the backbone `features` runs once per image and the head 50 times.
  * `test_mc_dropout_naive_t50_1k_x10`: `mc_dropout(clf, x, passes=50, fast=False)`: 50 full forward
    passes. It costs about 50 forward passes (minutes on a 2-core CPU for 10,000 images), so it is
    timed on the FIRST 1,000 TEST IMAGES (one eval batch) and the time is SCALED BY 10 to 10,000
    images. The work is linear in the number of eval batches (10 identical batches of 1,000), so the
    scaling is exact up to noise. pytest-benchmark's table shows the raw 1,000-image time; its
    extra_info holds both (`measured_images`, `measured_best_s`, `scale`, and `best_s` etc. already
    scaled to 10,000 images).
  Each reports images/s (images scored per second, all T passes included) in extra_info.
  * `test_mc_dropout_fast_vs_forward_ratio` (runs last): fast T=50 time <= 2.0 x the deterministic
    forward time, each from its best round. It asserts only under `--benchmark-only`, the benchmark
    run, and prints the ratios fast/deterministic and naive/fast and every images/s.

How to run
  pytest tests/perf/test_perf_uncertainty.py --benchmark-only -s
  tox -e perf                                    # every file in tests/perf
Without `--benchmark-only` the benchmarks run at tiny sizes (the first 200 test images in eval batches
of 20, the naive one on the first 20, still T=50); under `--benchmark-disable` (`tox -e test`,
CI) each runs once, untimed, so that an API change fails CI. The summary is then printed from those
calls and no speed target is asserted (conftest.py says more).
`--benchmark-skip` skips them all. The data files are found as `bench` finds them (BENCH_DATA_DIR,
the shared data folder, or the user cache, downloading if needed); the decoded-array cache goes to a
throw-away BENCH_CACHE_DIR (conftest.cache_env).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from perf_timing import timed

from bench.api import DatasetInfo, DatasetSplits
from bench.benchmarks.datasets.cifar10 import Cifar10
from bench.benchmarks.models.networks import SmallCNN
from bench.config import TrainRecipe
from bench.method.uncertainty import Uncertainty, head_only_dropout, mc_dropout
from bench.training import Classifier

# The cifar10 suite's model and inference settings (benchmarks/suites/cifar10.yaml, cpu preset).
SPEC = SmallCNN(width=32, dropout=0.5)
NUM_CLASSES = 10
N_BUILD = 1000  # training images whose statistics the network's input normalisation uses (suite budget)
PASSES = 50  # T, MC dropout passes
SEED = 0
MAX_FAST_RATIO = 2.0  # fast T=50 time must be at most this multiple of one deterministic pass
GROUP = "cifar10-mc-dropout"


@dataclass(frozen=True)
class Sizes:
    n_test: int  # test images scored by the deterministic and fast benchmarks (the first n_test)
    eval_batch: int  # images per forward batch (the recipe's eval_batch_size)
    n_naive: int  # test images the naive T=50 benchmark is timed on (the first n_naive) ...
    naive_scale: int  # ... and the factor its times are scaled by to n_test images
    rounds: int  # timed rounds of the deterministic and fast benchmarks (after warmup_rounds untimed)
    warmup_rounds: int
    naive_rounds: int  # the naive benchmark: 25-45 s a round on 1,000 images on a 2-core CPU; no warm-up round


FULL = Sizes(n_test=10_000, eval_batch=1000, n_naive=1000, naive_scale=10, rounds=4, warmup_rounds=1, naive_rounds=1)
TINY = Sizes(n_test=200, eval_batch=20, n_naive=20, naive_scale=10, rounds=1, warmup_rounds=0, naive_rounds=1)

# Filled by the benchmarks, read by test_mc_dropout_fast_vs_forward_ratio: name -> {metric: value}.
_RESULTS: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sizes(tiny: bool) -> Sizes:
    return TINY if tiny else FULL


@pytest.fixture(scope="module")
def cifar10(cache_env: Path) -> DatasetSplits:
    data = Cifar10().load()
    assert len(data.test) == 10_000 and DatasetInfo.of(data).num_classes == NUM_CLASSES
    return data


@pytest.fixture(scope="module")
def x_test(cifar10: DatasetSplits, sizes: Sizes) -> np.ndarray:
    """The official test split (its first sizes.n_test images), uint8 (n_test, 32, 32, 3)."""
    return np.asarray(cifar10.test.x[: sizes.n_test])


@pytest.fixture(scope="module")
def clf(cifar10: DatasetSplits, sizes: Sizes, bf16_autocast: bool) -> Classifier:
    """SmallCNN (width 32, dropout 0.5), freshly initialised, in the layout `fit_classifier` leaves a
    trained one (channels_last, eval mode)."""
    idx = np.sort(np.random.default_rng(SEED).choice(len(cifar10.train), N_BUILD, replace=False))
    torch.manual_seed(SEED)
    module = SPEC.build(cifar10.train.subset(idx), DatasetInfo.of(cifar10))
    module = module.to(memory_format=torch.channels_last).eval()
    assert head_only_dropout(module), "SmallCNN's dropout is expected in its head only (the fast path)"
    recipe = TrainRecipe(channels_last=True, bf16_autocast=bf16_autocast, eval_batch_size=sizes.eval_batch)
    return Classifier(module=module, spec=SPEC, recipe=recipe, device=torch.device("cpu"))


# ---------------------------------------------------------------------------------------- helpers




def _record(benchmark: Any, name: str, images: int, passes: int, seconds: list[float],
            measured_images: int | None = None, bf16: bool = False) -> None:
    """Put times (s per `images`-image run) and images/s of the best and the median round into
    extra_info and _RESULTS: from pytest-benchmark's rounds, or (--benchmark-disable) from the single
    untimed call in `seconds`. With `measured_images`, the rounds covered that many images and the
    times are scaled linearly to `images`."""
    if benchmark.stats is not None:
        raw_best, raw_median, timed = benchmark.stats.stats.min, benchmark.stats.stats.median, 1.0
    else:
        assert seconds, f"{name}: the benchmarked function did not run"
        raw_best = raw_median = seconds[-1]
        timed = 0.0
    scale = images / measured_images if measured_images else 1.0
    best, median = raw_best * scale, raw_median * scale
    out: dict[str, float] = {
        "images": float(images),
        "passes": float(passes),
        "best_s": best,  # s per round (scaled to `images` when extrapolated)
        "median_s": median,
        "images_per_s": images / best,  # best round; an image counts once, with all its passes
        "images_per_s_median": images / median,
        "torch_threads": float(torch.get_num_threads()),
        "bf16_autocast": float(bf16),
        "timed": timed,  # 0: one untimed call (--benchmark-disable), not a measurement
    }
    if measured_images:
        out.update({"measured_images": float(measured_images), "scale": scale,
                    "measured_best_s": raw_best, "measured_median_s": raw_median})
    benchmark.extra_info.update(out)
    if measured_images:
        benchmark.extra_info["note"] = (f"timed on the first {measured_images} test images; best_s, median_s and "
                                        f"images_per_s are scaled x{scale:g} to {images} images")
    _RESULTS[name] = out


def _check_mc(u: Uncertainty, n: int) -> None:
    assert u.samples.shape == (PASSES, n, NUM_CLASSES)
    assert np.isfinite(u.samples).all()
    np.testing.assert_allclose(u.samples.sum(axis=-1), 1.0, atol=1e-5)
    assert float(u.variance.mean()) > 0, "the passes do not differ: dropout was not active"


# ------------------------------------------------------------------------------------- benchmarks


@pytest.mark.benchmark(group=GROUP)
def test_forward_deterministic(benchmark: Any, clf: Classifier, x_test: np.ndarray, sizes: Sizes) -> None:
    seconds: list[float] = []
    probs = benchmark.pedantic(timed(clf.predict_proba, seconds), args=(x_test,), rounds=sizes.rounds,
                               warmup_rounds=sizes.warmup_rounds)
    assert probs.shape == (len(x_test), NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    _record(benchmark, "deterministic", len(x_test), 1, seconds, bf16=clf.recipe.bf16_autocast)


@pytest.mark.benchmark(group=GROUP)
def test_mc_dropout_fast_t50(benchmark: Any, clf: Classifier, x_test: np.ndarray, sizes: Sizes) -> None:
    seconds: list[float] = []
    u = benchmark.pedantic(timed(lambda: mc_dropout(clf, x_test, passes=PASSES, fast=True, seed=SEED), seconds),
                           rounds=sizes.rounds, warmup_rounds=sizes.warmup_rounds)
    _check_mc(u, len(x_test))
    _record(benchmark, "fast", len(x_test), PASSES, seconds, bf16=clf.recipe.bf16_autocast)


@pytest.mark.benchmark(group=GROUP)
def test_mc_dropout_naive_t50_1k_x10(benchmark: Any, clf: Classifier, x_test: np.ndarray, sizes: Sizes) -> None:
    """T=50 full forward passes, timed on the first sizes.n_naive (1,000) test images and scaled by
    sizes.naive_scale (10) to the 10,000 of the other benchmarks (see the module docstring)."""
    x_sub = x_test[: sizes.n_naive]
    assert sizes.n_naive * sizes.naive_scale == len(x_test) and sizes.n_naive % clf.recipe.eval_batch_size == 0
    seconds: list[float] = []
    u = benchmark.pedantic(timed(lambda: mc_dropout(clf, x_sub, passes=PASSES, fast=False, seed=SEED), seconds),
                           rounds=sizes.naive_rounds, warmup_rounds=0)
    _check_mc(u, len(x_sub))
    _record(benchmark, "naive", len(x_test), PASSES, seconds, measured_images=len(x_sub),
            bf16=clf.recipe.bf16_autocast)


@pytest.mark.benchmark(group="summary")
def test_mc_dropout_fast_vs_forward_ratio(benchmark: Any, tiny: bool, check_speed: bool,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the three benchmarks (file order) and prints the summary. The speed target is checked
    only under --benchmark-only; under --benchmark-disable the summary comes from single untimed calls at
    tiny sizes and only says that the benchmarks ran."""
    if "deterministic" not in _RESULTS or "fast" not in _RESULTS:
        pytest.skip("the deterministic and fast benchmarks did not both run (deselected or failed)")
    det, fast, naive = _RESULTS["deterministic"], _RESULTS["fast"], _RESULTS.get("naive")
    ratio: float = benchmark.pedantic(lambda: fast["best_s"] / det["best_s"], rounds=1)
    median_ratio = fast["median_s"] / det["median_s"]
    info: dict[str, float] = {"fast_over_deterministic": ratio, "fast_over_deterministic_median": median_ratio,
                              "torch_threads": torch.get_num_threads(), "bf16_autocast": det["bf16_autocast"]}
    if naive is not None:
        info["naive_over_fast"] = naive["best_s"] / fast["best_s"]
        info["naive_over_fast_median"] = naive["median_s"] / fast["median_s"]
    benchmark.extra_info.update(info)

    precision = "bf16 autocast" if det["bf16_autocast"] else "float32"
    how = "best round; median in brackets" if not tiny else "TINY RUN (no --benchmark-only): not a measurement"
    scale = f"{naive['measured_images']:,.0f} x{naive['scale']:g}" if naive is not None else ""
    lines = ["", f"MC dropout summary, {det['images']:,.0f} CIFAR-10 test images, T={PASSES} ({how}; {precision}; "
                 f"torch threads {torch.get_num_threads()})"]
    labels = (("deterministic", "forward, deterministic"), ("fast", f"MC T={PASSES}, fast"),
              ("naive", f"MC T={PASSES}, naive ({scale})"))
    for name, label in labels:
        if name in _RESULTS:
            r = _RESULTS[name]
            lines.append(f"  {label:29s}: {r['best_s']:7.2f} s ({r['median_s']:.2f} s) = "
                         f"{r['images_per_s']:8,.0f} images/s ({r['images_per_s_median']:,.0f})")
    lines.append(f"  {'fast / deterministic time':29s}: {ratio:.3f} ({median_ratio:.3f}); target <= {MAX_FAST_RATIO:.1f}")
    if naive is not None:
        lines.append(f"  {'naive / fast time':29s}: {info['naive_over_fast']:.1f} ({info['naive_over_fast_median']:.1f})")
    with capsys.disabled():
        print("\n".join(lines))

    if not check_speed:
        return  # the speed target is checked only in the full-size benchmark run (--benchmark-only)
    assert ratio <= MAX_FAST_RATIO, (
        f"MC dropout T={PASSES} (fast path) takes {fast['best_s']:.2f} s, {ratio:.2f} x one deterministic "
        f"forward pass ({det['best_s']:.2f} s) over the {det['images']:,.0f} test images (target <= {MAX_FAST_RATIO})"
    )
