"""The sd_lora generator on a tiny, randomly initialised Stable Diffusion pipeline built here (no
weights exist on these machines and nothing may be downloaded): the very code path that loads a
user's diffusers folder, trains LoRA adapters, pickles, reloads lazily and samples."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.errors import BenchError
from bench.method.generators.sd_lora import TARGET_MODULES, StableDiffusionLoRA
from bench.registry import GENERATORS

CLASSES = ["red", "green", "blue"]


def make_images(n_per_class: int, size: int = 8, seed: int = 0) -> Split:
    """Random uint8 RGB images whose c-th channel is bright for class c (three classes)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = rng.integers(0, 80, (len(y), size, size, 3)).astype(np.uint8)
    x[np.arange(len(y)), :, :, y] += 150
    return Split(x, y)


@pytest.fixture(scope="module", autouse=True)
def _offline_single_thread():
    """Hub look-ups off (a test that tried to download would fail, not hang); one thread on the busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield
    torch.set_num_threads(threads)


def write_tiny_pipeline(folder: Path) -> Path:
    """A randomly initialised SD-shaped pipeline (about 1 M parameters, 16 px) saved as a diffusers folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # A byte-level BPE vocabulary with no merges: every byte is a token (CLIP's own tokenizer files are
    # this plus 48,894 merges).
    tok_dir = folder.parent / "tokenizer-files"
    tok_dir.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    (tok_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)  # CLIP's context length

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=DDPMScheduler(clip_sample=False, steps_offset=1), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")


def small_generator(model_path: Path, **params) -> StableDiffusionLoRA:
    return StableDiffusionLoRA(**{"model_path": str(model_path), "class_names": CLASSES, "rank": 4, "train_steps": 2,
                                  "batch_size": 4, "lr": 1e-2, "num_inference_steps": 4, "sample_batch_size": 4,
                                  "device": "cpu", **params})


@pytest.fixture(scope="module")
def fitted(model_path: Path) -> StableDiffusionLoRA:
    return small_generator(model_path, hflip=True).fit(make_images(4, size=8), DatasetInfo.unnamed(3), seed=0)


def test_registered_as_needing_a_model_folder():
    assert GENERATORS.get("sd_lora") is StableDiffusionLoRA
    caps = GENERATORS.caps("sd_lora")
    assert caps.modalities == ("image",) and caps.needs_model_path


@pytest.mark.parametrize("path", [None, "/nonexistent/sd21"])
def test_missing_model_path_is_a_one_line_error_naming_the_parameter(path, tmp_path):
    real = make_images(2, size=8)
    with pytest.raises(BenchError, match="model_path") as info:
        StableDiffusionLoRA(model_path=path).fit(real, DatasetInfo.unnamed(3), seed=0)
    assert "\n" not in str(info.value)
    with pytest.raises(BenchError, match="no model_index.json"):  # a folder that is not a diffusers pipeline
        StableDiffusionLoRA(model_path=str(tmp_path)).fit(real, DatasetInfo.unnamed(3), seed=0)


def test_bad_parameters_are_rejected():
    for bad in ({"rank": 0}, {"prompt_template": "a photo"}, {"precision": "fp8"}, {"device": "tpu"}):
        with pytest.raises(ValueError):
            StableDiffusionLoRA(**bad)


def test_fit_trains_only_the_lora_adapters(fitted, model_path):
    from safetensors.torch import load_file

    base = load_file(model_path / "unet" / "diffusion_pytorch_model.safetensors")
    unet = fitted.pipelines()[0].unet
    lora = {name: p for name, p in unet.named_parameters() if "lora_" in name}
    assert lora and all(p.requires_grad for p in lora.values())
    adapted = {name.split(".lora_")[0] for name in lora}  # the modules that carry an adapter
    assert {m for m in TARGET_MODULES if any(a.endswith("." + m) for a in adapted)} == set(TARGET_MODULES)
    assert all(any(a.endswith("." + m) for m in TARGET_MODULES) for a in adapted)
    # lora_B starts at zero (the adapted model starts as the base model): two steps moved it.
    assert all(p.abs().sum() > 0 for name, p in lora.items() if "lora_B" in name)
    for name, p in unet.named_parameters():
        if "lora_" not in name:
            assert not p.requires_grad, name
            torch.testing.assert_close(p, base[name.replace(".base_layer", "")], rtol=0, atol=0, msg=name)
    assert len(fitted.loss_history_) == 1 and np.isfinite(fitted.loss_history_[0][1])
    assert fitted.resolution_ == 16  # the tiny model's native size: UNet sample_size 8 x VAE factor 2


def test_pickle_keeps_the_adapter_not_the_model_and_reloads_it_lazily(fitted):
    labels = np.array([0, 2, 1])
    before = fitted.sample(3, Conditions(labels=labels), np.random.default_rng(7))
    blob = pickle.dumps(fitted)
    assert len(blob) < 200_000  # the adapter (~40 kB here), not the 4.6 MB pipeline
    clone = pickle.loads(blob)
    assert clone._pipes is None
    after = clone.sample(3, Conditions(labels=labels), np.random.default_rng(7))
    np.testing.assert_array_equal(before.x, after.x)
    assert before.x.shape == (3, 8, 8, 3) and before.x.dtype == np.uint8 and before.y.tolist() == [0, 2, 1]


def test_seeds_prompts_and_strength(fitted):
    seeds = make_images(2, size=8, seed=3).x  # (6, 8, 8, 3)
    labels = np.array([1, 0, 2, 1, 0, 2])
    varied = fitted.sample(6, Conditions(labels=labels, seeds=seeds, strength=0.5), np.random.default_rng(0))
    assert varied.x.shape == seeds.shape and varied.x.dtype == np.uint8 and varied.y.tolist() == labels.tolist()
    assert not np.array_equal(varied.x, seeds)
    copy = fitted.sample(6, Conditions(labels=labels, seeds=seeds, strength=0.0), np.random.default_rng(0))
    np.testing.assert_array_equal(copy.x, seeds)  # strength 0 returns the seeds
    np.testing.assert_array_equal(  # so does a strength too small for one of the 4 steps
        fitted.sample(6, Conditions(labels=labels, seeds=seeds, strength=0.2), np.random.default_rng(0)).x, seeds)
    # Uncertainty-conditioned prompts replace the class prompts one for one.
    plain = fitted.sample(2, Conditions(labels=labels[:2]), np.random.default_rng(1))
    prompted = fitted.sample(2, Conditions(labels=labels[:2], prompts=["a photo of a green that looks like a red"] * 2),
                             np.random.default_rng(1))
    assert prompted.x.shape == plain.x.shape and not np.array_equal(prompted.x, plain.x)
    assert fitted.prompts(np.array([2])) == ["a photo of a blue"]
    with pytest.raises(ValueError, match="prompts"):
        fitted.sample(2, Conditions(labels=labels[:2], prompts=["one"]), np.random.default_rng(1))


def test_the_harness_caches_the_fitted_generator(tiny_task, model_path):
    """bench.generator.fitted_generator: fitted and pickled once, then loaded from the cache."""
    from bench.generator import fitted_generator

    params = {"model_path": str(model_path), "class_names": ["r", "g", "b"], "rank": 2, "train_steps": 1,
              "batch_size": 2, "num_inference_steps": 2, "device": "cpu"}
    first, log = fitted_generator(tiny_task, "sd_lora", params)
    again, log_again = fitted_generator(tiny_task, "sd_lora", params)
    assert not log["cached"] and log_again["cached"] and log["key"] == log_again["key"]
    conditions = Conditions(labels=np.array([2, 0]), seeds=np.asarray(tiny_task.pool.x)[:2], strength=0.5)
    a = first.sample(2, conditions, np.random.default_rng(3))
    b = again.sample(2, conditions, np.random.default_rng(3))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.x.shape == (2, *np.asarray(tiny_task.train.x).shape[1:]) and a.x.dtype == np.uint8


def test_grey_images_round_trip_through_rgb():
    gen = StableDiffusionLoRA(model_path="unused")
    gen.shape_, gen.channels_ = (8, 8, 1), 1
    grey = make_images(2, size=8).x[..., :1]
    pixels = gen._to_pixels(grey, 16, torch.device("cpu"))
    assert pixels.shape == (len(grey), 3, 16, 16)
    back = gen._to_images(pixels)
    assert back.shape == grey.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - grey).max() <= 40  # bicubic up, antialiased bilinear down: close, not exact


def test_exported_adapter_loads_into_a_plain_diffusers_pipeline(fitted, model_path, tmp_path):
    from diffusers import StableDiffusionPipeline

    fitted.save_lora(tmp_path)
    pipe = StableDiffusionPipeline.from_pretrained(model_path, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_lora_weights(tmp_path)
    ours = fitted.pipelines()[0].unet
    x, t, ctx = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, t, ctx).sample, ours(x, t, ctx).sample)
