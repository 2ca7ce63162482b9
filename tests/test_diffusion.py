"""The class-conditional diffusion generator (method/generators/diffusion.py) on tiny in-memory images: it learns
which class is dark and which is bright, SDEdit stays near its seeds at low strength, shapes and
dtypes survive padding, and the fitted state pickles (the generator cache). Its pretraining on the
unlabelled training images: it reads no labels, runs once per data set (cached, shared across seeds),
is off by default with today's weights and cache keys, and fine-tuning starts from it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench import generator as bgen
from bench.api import Conditions, DatasetInfo, Split, StrategyCaps
from bench.config import NamedSpec, TrainRecipe
from bench.errors import BenchError
from bench.method.generators.diffusion import ClassConditionalDiffusion
from bench.registry import GENERATORS
from bench.task import Task, UnlabelledSplit

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


# -- pretraining on the unlabelled training images ------------------------------------------------

PRETRAIN = {**TINY, "pretrain_steps": 3, "finetune_steps": 2, "sample_steps": 2}


def weights(unet: torch.nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(unet.parameters()).detach()


def test_pretrain_steps_zero_fits_todays_generator_bit_for_bit():
    """The from-scratch fit before pretraining existed, on this input (5 steps, seed 3, one torch thread):
    these digits were printed by the code of that time (float32 on an AVX2 CPU; two threads move the sum by
    3e-5 relative, a change of random stream or schedule moves the first weights by far more)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 4)
    x = (rng.integers(20, 81, (8, 8, 8, 1)) + 155 * y[:, None, None, None]).astype(np.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fits = [ClassConditionalDiffusion(block_out_channels=(16, 32), batch_size=32, device="cpu", train_steps=5,
                                          hflip=True, **extra).fit(Split(x, y), DatasetInfo.unnamed(2), seed=3)
                for extra in ({}, {"pretrain_steps": 0})]
    finally:
        torch.set_num_threads(threads)
    a, b = (weights(g.unet_) for g in fits)
    assert torch.equal(a, b)
    assert float(a.double().sum()) == pytest.approx(531.5379500220871, rel=1e-5)
    assert float(a.double().norm()) == pytest.approx(32.76431317961676, rel=1e-6)
    assert a[:4].tolist() == pytest.approx([-0.33330807, -0.26027101, -0.14237392, -0.31290668], rel=1e-6)


@pytest.mark.parametrize("extra", [{}, {"pretrain_steps": 0}])
def test_without_pretraining_the_cache_key_and_cell_record_are_todays(extra):
    """The new parameters stay out of the key while off: cached generators and result hashes stay valid."""
    from bench.registry import param_record as _params

    g = GENERATORS.build("diffusion", extra)
    real = dark_and_bright(2)
    record = {"generator": "diffusion", "version": GENERATORS.caps("diffusion").version,  # the key's formula before
              "params": {k: v for k, v in dataclasses.asdict(g).items()
                         if k not in ("device", "pretrain_steps", "pretrain_images", "finetune_steps")},
              "dataset": "tiny", "budget": 2, "seed": 0, "real": bgen.fingerprint(real)}
    before = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    assert bgen.generator_key("diffusion", g, "tiny", 2, 0, real) == before
    assert not {"pretrain_steps", "pretrain_images", "finetune_steps"} & set(_params(g))
    assert g.pretraining() is None


def test_pretraining_reads_inputs_only_every_label_the_null_class(monkeypatch):
    seen = []
    original = ClassConditionalDiffusion._train

    def spy(self, unet, X, Y, *args, **kwargs):
        seen.append(Y.clone())
        return original(self, unet, X, Y, *args, **kwargs)

    monkeypatch.setattr(ClassConditionalDiffusion, "_train", spy)
    x = dark_and_bright(8).x  # pretrain() takes inputs alone: there are no labels to pass
    state = ClassConditionalDiffusion(**PRETRAIN).pretrain(x, DatasetInfo.unnamed(2), seed=0)
    (labels,) = seen
    assert labels.tolist() == [2] * len(x)  # the null class of 2 classes
    assert (state["steps"], state["examples"], state["num_classes"]) == (3, 16, 2)


def test_pretraining_inputs_are_the_training_split_in_an_order_no_seed_changes(tiny_data):
    """Budget, validation and pool together, read without a label (every part here raises on y), the same
    set and order whichever seed cut it; a subset of pretrain_images is fixed by its size alone."""
    def unlabelled(seed: int) -> SimpleNamespace:
        task = Task.build(tiny_data, budget=10, val_per_class=5, seed=seed, model=NamedSpec(name="small_cnn"),
                          recipe=TrainRecipe())
        return SimpleNamespace(**{k: UnlabelledSplit.of(getattr(task, k)) for k in ("train", "val", "pool")})

    a, b = bgen.training_inputs(unlabelled(0)), bgen.training_inputs(unlabelled(1))
    assert np.array_equal(a, b) and len(a) == len(tiny_data.train)
    assert sorted(map(bytes, a)) == sorted(map(bytes, np.asarray(tiny_data.train.x)))
    assert np.array_equal(bgen.pretraining_inputs(unlabelled(0), 50), bgen.pretraining_inputs(unlabelled(1), 50))
    assert len(bgen.pretraining_inputs(unlabelled(0), 50)) == 50


def test_snapshots_of_one_run_equal_shorter_pretraining():
    x, info = dark_and_bright(8).x, DatasetInfo.unnamed(2)
    g = ClassConditionalDiffusion(**{**PRETRAIN, "pretrain_steps": 4})
    snapshots = dict(g.pretrain_snapshots(x, info, seed=0, at=(2, 4)))
    short = ClassConditionalDiffusion(**{**PRETRAIN, "pretrain_steps": 2}).pretrain(x, info, seed=0)
    assert torch.equal(weights(snapshots[2]["unet"]), weights(short["unet"]))
    assert not torch.equal(weights(snapshots[2]["unet"]), weights(snapshots[4]["unet"]))
    assert 0 < snapshots[2]["cpu_seconds"] <= snapshots[4]["cpu_seconds"]


def test_finetuning_starts_from_the_pretrained_weights():
    data, info = dark_and_bright(4), DatasetInfo.unnamed(2)
    state = ClassConditionalDiffusion(**PRETRAIN, lr=2e-3).pretrain(dark_and_bright(8, seed=1).x, info, seed=0)
    before = weights(state["unet"]).clone()
    # learning rate 0: fine-tuning moves nothing, so the fitted weights are the pretrained ones exactly
    still = ClassConditionalDiffusion(**PRETRAIN, lr=0.0).fit(data, info, seed=5, pretrained=state)
    assert torch.equal(weights(still.unet_), before)
    tuned = ClassConditionalDiffusion(**PRETRAIN).fit(data, info, seed=5, pretrained=state)
    assert tuned.train_steps_ == 2 and tuned.pretrained_steps_ == 3 and tuned.pretrained_examples_ == 16
    assert torch.equal(weights(state["unet"]), before)  # the shared state is copied, never trained in place
    scratch = ClassConditionalDiffusion(**{**PRETRAIN, "pretrain_steps": None}).fit(data, info, seed=5)
    distance = (weights(tuned.unet_) - before).norm()
    assert distance < (weights(scratch.unet_) - before).norm() and distance > 0
    out = tuned.sample(3, Conditions(labels=np.array([0, 1, 1])), np.random.default_rng(0))
    assert out.x.shape == (3, 8, 8, 1)


def test_fit_needs_the_pretrained_state_exactly_when_pretraining_is_on():
    data, info = dark_and_bright(2), DatasetInfo.unnamed(2)
    with pytest.raises(ValueError, match="pretrained"):
        ClassConditionalDiffusion(**PRETRAIN).fit(data, info, seed=0)
    state = ClassConditionalDiffusion(**PRETRAIN).pretrain(data.x, info, seed=0)
    with pytest.raises(ValueError, match="pretrained"):
        ClassConditionalDiffusion(**TINY, train_steps=1).fit(data, info, seed=0, pretrained=state)
    with pytest.raises(ValueError, match="classes"):
        ClassConditionalDiffusion(**PRETRAIN).fit(data, DatasetInfo.unnamed(3), seed=0, pretrained=state)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def view(data, seed: int):
    """The strategy's view of a tiny task: the pool's labels hidden."""
    task = Task.build(data, budget=10, val_per_class=5, seed=seed, model=NamedSpec(name="small_cnn"), recipe=TrainRecipe())
    return task.for_strategy(StrategyCaps(kind="baseline"))


def test_the_pretrained_entry_is_cached_once_and_shared_by_every_seed(tiny_data, fresh_cache, monkeypatch):
    calls = []
    original = ClassConditionalDiffusion.pretrain

    def counting(self, x, info, seed):
        calls.append(seed)
        return original(self, x, info, seed)

    monkeypatch.setattr(ClassConditionalDiffusion, "pretrain", counting)
    logs = [bgen.fitted_generator(view(tiny_data, seed), "diffusion", PRETRAIN)[1] for seed in (0, 1, 1)]
    assert calls == [bgen.PRETRAIN_SEED]  # pretrained once, for the first seed; never again
    assert [log["pretrain_cached"] for log in logs] == [False, True, True]
    assert [log["cached"] for log in logs] == [False, False, True]  # the fits are per seed
    assert len({log["pretrain_key"] for log in logs}) == 1 and logs[0]["key"] != logs[1]["key"]
    assert bgen.pretrained_cache_path("diffusion", logs[0]["pretrain_key"]).exists()
    # the pretraining's cost travels with every fit that used it, whoever ran it
    assert logs[0]["pretrain_cpu_seconds"] > 0
    assert logs[0]["pretrain_cpu_seconds"] == logs[1]["pretrain_cpu_seconds"] == logs[2]["pretrain_cpu_seconds"]
    # what the generator saw: the labelled budget, and the training split's images without labels
    assert [(log["labelled_examples"], log["unlabelled_examples"]) for log in logs] == [(30, 120)] * 3
    # another pretraining setting is another entry; a subset of the images is counted as such
    other = bgen.fitted_generator(view(tiny_data, 0), "diffusion", {**PRETRAIN, "pretrain_images": 50})[1]
    assert other["pretrain_key"] != logs[0]["pretrain_key"] and other["unlabelled_examples"] == 50 and len(calls) == 2


def test_a_generator_without_pretraining_logs_no_unlabelled_images(tiny_data, fresh_cache):
    _, log = bgen.fitted_generator(view(tiny_data, 0), "diffusion", {**TINY, "train_steps": 1, "sample_steps": 1})
    assert (log["labelled_examples"], log["unlabelled_examples"]) == (30, 0) and "pretrain_key" not in log


def test_pretraining_refuses_another_view_of_the_budget(tiny_data, fresh_cache):
    task = view(tiny_data, 0)
    with pytest.raises(BenchError, match="pretrains"):
        bgen.fitted_generator(task, "diffusion", PRETRAIN, real=task.train, info=task.info)


def test_the_pretraining_is_recorded_apart_and_charged_to_no_cell():
    from bench.cells import _charged

    def record(cached: bool, pretrain_cached: bool, cpu: float) -> dict:
        log = {"cached": cached, "fit_cpu_seconds": 5.0, "pretrain_cached": pretrain_cached, "pretrain_cpu_seconds": 100.0}
        return {"strategy_log": {"generator": log}, "compute": {"cpu_seconds": cpu}}

    expected = {"generator_fit_cpu_seconds": 5.0, "generator_pretrain_cpu_seconds": 100.0, "charged_cpu_seconds": 12.0}
    assert _charged(record(False, False, 112.0)) == expected  # 7 s of its own, the fit and the pretraining
    assert _charged(record(False, True, 12.0)) == expected  # pretrained weights read from the cache
    assert _charged(record(True, True, 7.0)) == expected  # the fit read from the cache
