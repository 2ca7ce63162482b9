"""Image-quality metrics (metrics/image_quality.py) on real Inception features: two disjoint sets of
CIFAR-10 test images score as alike, uniform noise as unlike; plus not-applicable and cache checks.

Inception costs about 0.3 CPU-seconds per 299-px image here (3-8 images/s on the shared 2-core CPU),
so the fast check of the real features uses 20 images per set (60 through the network) and asserts
only the order of real-vs-real and real-vs-noise scores; the quantitative checks use 100 images per set
(300 through the network, 1-4 minutes depending on load) and are marked slow."""
from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest

from bench.api import EvalContext, Split
from bench.data import cache_root
from bench.metrics import image_quality as iq
from bench.registry import METRICS

NAMES = ("fid", "kid", "coverage", "density", "one_nn_accuracy")
N = 100  # images per set of the slow checks: enough for stable coverage and 1-NN accuracy
N_FAST = 20  # images per set of the fast check: enough to order real-vs-real below real-vs-noise


def make_ctx(real: np.ndarray, synthetic: np.ndarray | None) -> EvalContext:
    """What the image metrics read: the task's test images, its device and modality, and the synthetic
    split."""
    task = SimpleNamespace(test=Split(real, np.zeros(len(real), dtype=np.int64)), device="cpu",
                           data=SimpleNamespace(modality="image"))
    syn = None if synthetic is None else Split(synthetic, np.zeros(len(synthetic), dtype=np.int64))
    return EvalContext(task=task, classifier=None, y_true=task.test.y, probs=np.zeros((len(real), 2)), synthetic=syn)


@pytest.fixture(scope="module")
def image_sets() -> dict[str, np.ndarray]:
    from bench.benchmarks.datasets.cifar10 import Cifar10

    test = Cifar10().load().test
    idx = np.random.default_rng(0).permutation(len(test))
    noise = np.random.default_rng(1).integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    return {"real_a": np.asarray(test.x[np.sort(idx[:N])]), "real_b": np.asarray(test.x[np.sort(idx[N : 2 * N])]),
            "noise": noise}


def score(name: str, ctx: EvalContext, **params) -> float | None:
    """The metric's value; FID at any N of at least 2 (its suite minimum, 2,049, is tested in
    tests/test_metric_samples.py): these checks are of the features, at 20-100 images."""
    if name == "fid":
        params.setdefault("min_samples", 2)
    return METRICS.get(name)(ctx, **params).value


def all_scores(image_sets: dict[str, np.ndarray], n: int) -> dict[str, dict[str, float]]:
    """Every metric for real-vs-real (two disjoint CIFAR-10 test subsets) and real-vs-noise, n images
    per set."""
    out = {}
    for other in ("real_b", "noise"):
        ctx = make_ctx(image_sets["real_a"][:n], image_sets[other][:n])
        out[other] = {name: score(name, ctx, samples=n, reference_samples=n) for name in NAMES}
    print(out)  # the measured numbers, shown with pytest -s
    return out


@pytest.fixture(scope="module")
def scores(image_sets) -> dict[str, dict[str, float]]:
    return all_scores(image_sets, N)


def test_registered_with_direction_and_modality():
    for name in NAMES:
        meta = METRICS.meta(name)
        assert meta["modalities"] == (("image",) if name in ("fid", "kid") else ("image", "text"))
        assert meta["higher_is_better"] is (name in ("coverage", "density"))


def test_not_applicable_without_synthetic_data(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("no features should be computed without synthetic data")

    monkeypatch.setattr(iq, "_extract", fail)
    ctx = make_ctx(np.zeros((4, 8, 8, 3), np.uint8), None)
    assert all(METRICS.get(name)(ctx) is None for name in NAMES)


def test_real_sets_score_closer_than_real_and_noise(image_sets):
    """Fast: the Inception features through the adapter tell CIFAR-10 images from noise."""
    real, noise = all_scores(image_sets, N_FAST).values()
    assert 0 < real["fid"] < 0.5 * noise["fid"]
    assert real["kid"] < 0.1 * noise["kid"]
    assert real["coverage"] > 0.5 > noise["coverage"]
    assert real["density"] > 0.5 > noise["density"]
    assert real["one_nn_accuracy"] < 0.8 < noise["one_nn_accuracy"]


@pytest.mark.slow
def test_fid_small_for_real_halves_huge_for_noise(scores):
    real, noise = scores["real_b"]["fid"], scores["noise"]["fid"]
    assert 0 < real < 0.5 * noise  # at N=100 the real-vs-real FID is far from 0: small-sample bias
    assert noise > 300


@pytest.mark.slow
def test_kid_near_zero_for_real_halves(scores):
    assert abs(scores["real_b"]["kid"]) < 0.02
    assert scores["noise"]["kid"] > 10 * max(abs(scores["real_b"]["kid"]), 0.01)


@pytest.mark.slow
def test_coverage_and_density(scores):
    assert scores["real_b"]["coverage"] > 0.8  # about 1 - 2^-k = 0.97 expected for equal distributions
    assert scores["noise"]["coverage"] < 0.05
    assert 0.5 < scores["real_b"]["density"] < 1.5  # about 1 for equal distributions
    assert scores["noise"]["density"] < 0.05


@pytest.mark.slow
def test_one_nn_accuracy_half_for_real_one_for_noise(scores):
    assert 0.35 < scores["real_b"]["one_nn_accuracy"] < 0.7
    assert scores["noise"]["one_nn_accuracy"] > 0.95


def test_fid_in_the_joint_span_equals_fid_in_feature_space():
    """The rotation onto the features' span (which keeps scipy's sqrtm small) leaves FID unchanged."""
    from cleanfid.fid import fid_from_feats

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(20, 64)), 1.5 * rng.normal(size=(15, 64)) + 0.3
    small_real, small_fake = iq._onto_joint_span(real, fake)
    assert small_real.shape == (20, 35)
    assert fid_from_feats(small_fake, small_real) == pytest.approx(fid_from_feats(fake, real), rel=1e-6)


def test_reference_features_are_cached_on_disk(monkeypatch):
    """The real reference set goes through Inception once; later calls (and later processes, which
    start with an empty memo) read its features from <cache>/features/."""
    calls = []

    def fake_extract(images: np.ndarray, device: str) -> np.ndarray:
        calls.append(len(images))
        rng = np.random.default_rng(int(images.sum()))  # deterministic per image set
        return rng.normal(size=(len(images), iq.FEATURE_DIM)).astype(np.float32)

    monkeypatch.setattr(iq, "_extract", fake_extract)
    monkeypatch.setattr(iq, "_MEMO", OrderedDict())
    rng = np.random.default_rng(7)
    real = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    ctx = make_ctx(real, rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))

    first = score("fid", ctx, samples=20, reference_samples=30)
    assert sorted(calls) == [20, 30]  # synthetic and reference, once each
    assert score("kid", ctx, samples=20, reference_samples=30) is not None
    assert score("coverage", ctx, samples=20, reference_samples=30) is not None
    assert sorted(calls) == [20, 30]  # the other metrics of the cell reuse both

    iq._MEMO.clear()  # as in a new process
    assert score("fid", ctx, samples=20, reference_samples=30) == pytest.approx(first)
    assert sorted(calls) == [20, 20, 30]  # only the synthetic set was recomputed
    assert len(list((cache_root() / "features").glob(f"{iq.FEATURE_KEY}-*.npy"))) >= 1
