"""The class-conditional diffusion generator (method/generators/diffusion.py) on tiny in-memory images: it learns
which class is dark and which is bright, SDEdit stays near its seeds at low strength, shapes and
dtypes survive padding, and the fitted state pickles (the generator cache)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.method.generators.diffusion import ClassConditionalDiffusion

# diffusers' DPM-Solver builds a numpy array from a torch tensor the way numpy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = {"block_out_channels": (16, 32), "layers_per_block": 1, "batch_size": 32, "device": "cpu"}


def dark_and_bright(n_per_class: int, size: int = 8, channels: int = 1, seed: int = 0) -> Split:
    """Class 0: dark images (grey levels 20-80); class 1: bright ones (175-235), uniform noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n_per_class)
    x = rng.integers(20, 81, (len(y), size, size, channels)) + 155 * y[:, None, None, None]
    return Split(x.astype(np.uint8), y)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threading costs more than it saves
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted() -> ClassConditionalDiffusion:
    torch.set_num_threads(1)
    # 150 steps of a 0.2 M-parameter UNet on 8x8 images (about 5 s on one core); 100 already separate the
    # classes (means 58 and 195 against 50 and 205 in the data)
    return ClassConditionalDiffusion(**TINY, train_steps=150, max_epochs=None, lr=2e-3, warmup_steps=20).fit(
        dark_and_bright(16), DatasetInfo.unnamed(2), seed=0)


def test_class_conditional_samples_follow_the_class(fitted):
    labels = np.repeat([0, 1], 16)
    out = fitted.sample(32, Conditions(labels=labels), np.random.default_rng(0))
    assert out.y.tolist() == labels.tolist()
    means = [float(out.x[labels == c].mean()) for c in (0, 1)]  # training means: 50 and 205
    assert means[0] < 110 < 150 < means[1], means


def test_sdedit_strength_zero_returns_the_seed_and_low_strength_stays_near_it(fitted):
    seeds = dark_and_bright(4, seed=1).x
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rng = np.random.default_rng(0)
    copy = fitted.sample(8, Conditions(labels=labels, seeds=seeds, strength=0.0), rng)
    np.testing.assert_array_equal(copy.x, seeds)

    def distance(strength: float) -> float:
        out = fitted.sample(8, Conditions(labels=labels, seeds=seeds, strength=strength), np.random.default_rng(1))
        return float(np.abs(out.x.astype(float) - seeds.astype(float)).mean())

    assert distance(0.1) < distance(1.0)


def test_sdedit_with_an_opposite_label_moves_towards_that_class(fitted):
    seeds = dark_and_bright(4, seed=2).x[:4]  # dark seeds
    out = fitted.sample(4, Conditions(labels=np.ones(4, np.int64), seeds=seeds, strength=0.9), np.random.default_rng(0))
    assert out.x.mean() > seeds.mean() + 50


def test_sampling_is_reproducible_from_the_rng_and_survives_pickling(fitted):
    cond = Conditions(labels=np.array([0, 1, 1]))
    a = fitted.sample(3, cond, np.random.default_rng(7)).x
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.sample(3, cond, np.random.default_rng(7)).x, a)
    assert not np.array_equal(fitted.sample(3, cond, np.random.default_rng(8)).x, a)


def test_fit_is_deterministic_in_the_seed():
    data = dark_and_bright(4)
    params = {**TINY, "train_steps": 3}
    a, b = (ClassConditionalDiffusion(**params).fit(data, DatasetInfo.unnamed(2), seed=3) for _ in range(2))
    c = ClassConditionalDiffusion(**params).fit(data, DatasetInfo.unnamed(2), seed=4)
    wa, wb, wc = (torch.nn.utils.parameters_to_vector(g.unet_.parameters()) for g in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


@pytest.mark.parametrize("shape", [(8, 8, 3), (8, 8, 1), (6, 10, 3), (7, 7)])
def test_shapes_and_dtypes_survive_padding(shape):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, *shape)).astype(np.uint8)
    g = ClassConditionalDiffusion(**TINY, train_steps=2, sample_steps=2).fit(Split(x, np.arange(6) % 3), DatasetInfo.unnamed(3), seed=0)
    labels = np.array([2, 0, 1])
    for seeds in (None, x[:3]):
        out = g.sample(3, Conditions(labels=labels, seeds=seeds, strength=0.5), rng)
        assert out.x.shape == (3, *shape) and out.x.dtype == np.uint8
        assert out.y.tolist() == labels.tolist()


def test_classifier_free_guidance_and_batching_run():
    data = dark_and_bright(4)
    g = ClassConditionalDiffusion(**{**TINY, "batch_size": 2}, train_steps=2, sample_steps=2, guidance_scale=2.0)
    g.fit(data, DatasetInfo.unnamed(2), seed=0)
    out = g.sample(5, Conditions(labels=np.array([0, 1, 0, 1, 1])), np.random.default_rng(0))
    assert out.x.shape == (5, 8, 8, 1)


def test_small_data_sets_train_for_at_most_max_epochs():
    g = ClassConditionalDiffusion(**TINY, train_steps=1000, max_epochs=2).fit(dark_and_bright(4), DatasetInfo.unnamed(2), seed=0)
    assert g.train_steps_ == 2  # 8 images fit one batch: 2 epochs are 2 steps


def test_timesteps_span_the_strength():
    g = ClassConditionalDiffusion(sample_steps=20)
    assert g.timesteps(1.0)[0] == 999 and len(g.timesteps(1.0)) == 20
    assert g.timesteps(0.5)[0] == 500 and len(g.timesteps(0.5)) == 10
    assert g.timesteps(0.01) == [10]
    assert all(a > b for a, b in zip(g.timesteps(0.3), g.timesteps(0.3)[1:]))


@pytest.mark.parametrize("params", [{"guidance_scale": 3.0, "label_dropout": 0.0}, {"block_out_channels": ()},
                                    {"attention_levels": (3,)}, {"device": "tpu"}, {"train_steps": 0}])
def test_bad_parameters_are_rejected(params):
    with pytest.raises(ValueError):
        ClassConditionalDiffusion(**params)


def test_rejects_non_uint8_images():
    with pytest.raises(ValueError, match="uint8"):
        ClassConditionalDiffusion(**TINY, train_steps=1).fit(Split(np.zeros((4, 8, 8, 3), np.float32), np.zeros(4, int)), DatasetInfo.unnamed(1), 0)


@pytest.mark.gpu
def test_fits_on_cuda_and_pickles_to_cpu_tensors():
    g = ClassConditionalDiffusion(**{**TINY, "device": "cuda"}, train_steps=3, sample_steps=2).fit(dark_and_bright(4), DatasetInfo.unnamed(2), 0)
    out = g.sample(2, Conditions(labels=np.array([0, 1])), np.random.default_rng(0))  # moves the UNet to CUDA
    assert out.x.shape == (2, 8, 8, 1)
    restored = pickle.loads(pickle.dumps(g))
    assert next(restored.unet_.parameters()).device.type == "cpu"
