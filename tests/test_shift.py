"""Shift metrics (metrics.shift): the 15 CIFAR-10-C corruptions on small images (shape, dtype, range,
change, severity order, seeding), their digest-checked disk cache, corruption accuracy on classifiers
whose score is known by hand, and the group-shift accuracy against a hand computation."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from bench.api import EvalContext, Split
from bench.benchmarks.models.networks import SmallCNN
from bench.config import TrainRecipe
from bench.data import CacheWarning
from bench.errors import BenchError
from bench.metrics import shift
from bench.metrics.robustness import attack_subset
from bench.registry import METRICS

# By definition not monotone in severity (see the module docstring): checked for change only.
NOT_MONOTONE = {"elastic_transform", "frost", "glass_blur", "motion_blur"}


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Every test starts without the in-memory scores of another."""
    shift._SCORES.clear()
    yield
    shift._SCORES.clear()


def smooth_images(n: int = 6, size: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, channels): smoothed noise over a gradient, mid-range (like photographs, unlike
    pure noise, which blurs would barely change on average)."""
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.random((n, size, size, channels)), sigma=(0, 1.5, 1.5, 0))
    ramp = np.linspace(0, 1, size)[None, :, None, None]
    x = 0.25 + 0.5 * (0.5 * ramp + 0.5 * (noise - noise.min()) / np.ptp(noise))
    return np.round(x * 255).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", shift.CORRUPTIONS)
def test_each_corruption_changes_images_and_keeps_shape_dtype_and_range(name, channels):
    x = smooth_images(channels=channels)
    as_float = x.astype(np.float32) / 255
    for severity in shift.SEVERITIES:
        out = shift.corrupt(x, name, severity, shift.set_rng(name, severity))
        assert out.shape == x.shape and out.dtype == np.uint8
        assert not np.array_equal(out, x), (name, severity)
        f = shift.corrupt(as_float, name, severity, shift.set_rng(name, severity))
        assert f.shape == x.shape and f.dtype == np.float32
        assert f.min() >= 0 and f.max() <= 1 and not np.allclose(f, as_float)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted(set(shift.CORRUPTIONS) - NOT_MONOTONE))
def test_severity_increases_the_mean_change(name, channels):
    # 32 px, as CIFAR-10: the snow layer's streaks (up to 29 px) are sized for it; at 16 px snow's
    # severities 2 and 3, close at any size, swap.
    x = smooth_images(n=48, size=32, channels=channels)
    change = [np.abs(s.astype(float) - x).mean() for s in shift.corrupted_sets(x, name, persist=False)]
    assert all(a < b for a, b in zip(change, change[1:])), change


def test_same_seed_same_sets_other_seed_other_sets():
    x = smooth_images()
    first = {name: shift.corrupted_sets(x, name, seed=0, persist=False).copy() for name in shift.CORRUPTIONS}
    for name in shift.CORRUPTIONS:
        assert np.array_equal(shift.corrupted_sets(x, name, seed=0, persist=False), first[name]), name
    # The random corruptions draw other images from another seed; the deterministic ones do not draw at all.
    deterministic = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}
    for name in shift.CORRUPTIONS:
        again = shift.corrupted_sets(x, name, seed=1, persist=False)
        assert np.array_equal(again, first[name]) == (name in deterministic), name


def test_cache_round_trips_and_detects_a_damaged_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    x = smooth_images(n=3, size=8)
    built = shift.corrupted_sets(x, "gaussian_noise")
    path = shift.cache_path(shift.content_key(x), "gaussian_noise", 0)
    assert path.is_file() and path.parent == tmp_path / "corruptions"

    def no_build(*args, **kwargs):
        raise AssertionError("built again although the cache holds the sets")

    with monkeypatch.context() as m:
        m.setattr(shift, "corrupt", no_build)
        assert np.array_equal(shift.corrupted_sets(x, "gaussian_noise"), built)
    # One flipped byte of the payload: a CacheWarning naming the file, and the sets rebuilt, equal.
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(CacheWarning, match="does not match its digest"):
        rebuilt = shift.corrupted_sets(x, "gaussian_noise")
    assert np.array_equal(rebuilt, built)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # the rewritten entry reads clean
        assert np.array_equal(shift.corrupted_sets(x, "gaussian_noise"), built)
    # Other images, another key: another entry.
    assert shift.content_key(x) != shift.content_key(smooth_images(n=3, size=8, seed=1))


class Oracle(nn.Module):
    """Predicts the true labels `y` in the order the metric scores them (each set is the subset in
    order, batch after batch), whatever the images."""

    def __init__(self, y: np.ndarray, classes: int) -> None:
        super().__init__()
        self.y, self.classes, self.pos = torch.as_tensor(y), classes, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = (self.pos + torch.arange(len(x))) % len(self.y)
        self.pos = (self.pos + len(x)) % len(self.y)
        return nn.functional.one_hot(self.y[idx], self.classes).float()


class Constant(nn.Module):
    """Always class 1."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0, 1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 3)


def ctx_of(module: nn.Module, x: np.ndarray, y: np.ndarray) -> EvalContext:
    classifier = SimpleNamespace(module=module, spec=SmallCNN(), recipe=TrainRecipe(), device=torch.device("cpu"))
    return EvalContext(task=SimpleNamespace(test=Split(x, y)), classifier=classifier, y_true=y,
                       probs=np.full((len(y), 3), 1 / 3), synthetic=None)


def test_corruption_accuracy_of_an_oracle_and_of_a_constant_classifier():
    x, y = smooth_images(n=15, size=8), np.arange(15) % 3
    y[:2] = 1  # class 1 in 6 of 15
    idx = attack_subset(15, 10)
    oracle = Oracle(y[idx], 3).train()
    ctx = ctx_of(oracle, x, y)
    assert METRICS.get("corruption_accuracy")(ctx, samples=10, batch_size=4) == 1.0
    assert METRICS.get("corruption_accuracy_per_corruption")(ctx, samples=10, batch_size=4) == {
        name: 1.0 for name in shift.CORRUPTIONS}
    assert oracle.training  # scored in eval mode, then left as it was
    constant = ctx_of(Constant(), x, y)
    assert METRICS.get("corruption_accuracy")(constant) == pytest.approx(6 / 15)  # every image: the frequency
    per = METRICS.get("corruption_accuracy_per_corruption")(constant, samples=10)
    assert per == pytest.approx({name: float(np.mean(y[idx] == 1)) for name in shift.CORRUPTIONS})
    # No torch network: not applicable.
    no_network = EvalContext(task=ctx.task, classifier=object(), y_true=y, probs=ctx.probs, synthetic=None)
    assert METRICS.get("corruption_accuracy")(no_network) is None


def test_corruption_accuracy_on_a_trained_network_is_a_fraction(tiny_task):
    clf = tiny_task.fit()
    ctx = EvalContext(task=tiny_task, classifier=clf, y_true=tiny_task.test.y,
                      probs=clf.predict_proba(tiny_task.test.x), synthetic=None)
    before = {k: v.clone() for k, v in clf.module.state_dict().items()}
    value = METRICS.get("corruption_accuracy")(ctx, samples=30)
    per = METRICS.get("corruption_accuracy_per_corruption")(ctx, samples=30)
    assert 0 <= value <= 1 and set(per) == set(shift.CORRUPTIONS)
    assert value == pytest.approx(np.mean(list(per.values())))
    assert all(torch.equal(v, before[k]) for k, v in clf.module.state_dict().items())


def test_bad_inputs_are_refused():
    x = smooth_images(n=2, size=8)
    with pytest.raises(BenchError, match="unknown corruption 'rain'"):
        shift.corrupt(x, "rain", 1, np.random.default_rng(0))
    with pytest.raises(BenchError, match="severity"):
        shift.corrupt(x, "fog", 6, np.random.default_rng(0))
    with pytest.raises(BenchError, match="C = 1 or 3"):
        shift.corrupt(x[..., :2], "fog", 1, np.random.default_rng(0))


def groups_ctx() -> EvalContext:
    # Group a: 4 examples, 3 right; group b: 2 examples, 1 right; group c: 2 examples, 0 right.
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 0, 0, 0, 0, 1, 0])
    probs = np.eye(2)[pred]
    groups = np.array(["a", "a", "a", "a", "b", "b", "c", "c"])
    test = Split(x=np.zeros((8, 1)), y=y, groups={"sex": groups})
    return EvalContext(task=SimpleNamespace(test=test), classifier=None, y_true=y, probs=probs, synthetic=None)


def test_group_shift_accuracy_by_hand():
    metric = METRICS.get("group_shift_accuracy")
    ctx = groups_ctx()
    assert metric(ctx, attribute="sex") == pytest.approx((3 / 4 + 1 / 2 + 0) / 3)  # uniform over groups
    assert metric(ctx, attribute="sex", mix={"a": 1, "b": 1, "c": 0}) == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert metric(ctx, attribute="sex", mix={"a": 3, "b": 1}) == pytest.approx((3 * 3 / 4 + 1 / 2) / 4)
    # The test split's own mix gives the plain accuracy; a point mass gives that group's accuracy.
    assert metric(ctx, attribute="sex", mix={"a": 4, "b": 2, "c": 2}) == pytest.approx(4 / 8)
    assert metric(ctx, attribute="sex", mix={"c": 1}) == 0.0
    assert metric(ctx, attribute="race") is None
    with pytest.raises(BenchError, match=r"groups \['d'\].*whose groups are \['a', 'b', 'c'\]"):
        metric(ctx, attribute="sex", mix={"a": 1, "d": 1})
    with pytest.raises(BenchError, match="non-negative"):
        metric(ctx, attribute="sex", mix={"a": -1, "b": 2})
    with pytest.raises(BenchError, match="'uniform' or weights"):
        metric(ctx, attribute="sex", mix="balanced")
