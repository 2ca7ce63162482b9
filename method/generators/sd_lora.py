"""Stable Diffusion adapted to the real-data budget with LoRA: the plan's SD 2.1 + LoRA generator.

The base model is a diffusers Stable Diffusion folder that the user supplies (`model_path`); nothing
is ever downloaded. `fit` freezes the VAE, the text encoder and the UNet, adds LoRA adapters
(peft `LoraConfig`, through diffusers' `unet.add_adapter`) to the UNet's attention projections
(to_q, to_k, to_v, to_out.0 of every self- and cross-attention block) and trains them with the
latent diffusion loss: images resized to `resolution`, VAE-encoded and scaled by
`vae.config.scaling_factor`, noised at a uniform timestep by the model's own noise schedule
(`DDPMScheduler.from_config`), and the UNet's prediction regressed (MSE) on the noise
(`prediction_type: epsilon`, SD 2.1-base) or on the velocity (`v_prediction`, SD 2.1 at 768 px).
Each image's prompt is `prompt_template` filled with its class name (`class_names`; left unset, the
harness fills in the data set's class names before fitting, e.g. "airplane", ..., "truck" for CIFAR-10).

Sampling (`StableDiffusionPipeline` and `StableDiffusionImg2ImgPipeline` on the same components):
  - no seeds (or strength 1): text-to-image from the class prompt of each target label;
  - `conditions.prompts`, when given, replace the class prompts one for one (uncertainty-conditioned
    prompts such as "a photo of a cat that looks like a dog");
  - seeds with 0 < strength < 1: image-to-image (SDEdit) from the uncertain seed at
    `strength=conditions.strength`; strength 0 (or fewer than one denoising step,
    int(num_inference_steps * strength) == 0) returns the seeds unchanged.
Generated images are resized back to the real images' size and returned as uint8 (N, H, W[, C]);
grey images (C = 1 or no channel axis) are fed to SD as three equal channels and come back as their
luma. All sampling noise comes from one torch Generator (on the CPU, so the same rng gives the same
images on any device) seeded from the numpy `rng`.

The fitted generator pickles small: the LoRA weights (safetensors bytes of peft's
`get_peft_model_state_dict`, a few MB to tens of MB) and the parameters, model_path included. The base
model is loaded lazily, on the first `sample` after unpickling, and the adapter put back with
`set_peft_model_state_dict`. `save_lora(folder)` exports the adapter in diffusers' LoRA format, for
`pipe.load_lora_weights(folder)` in any diffusers Stable Diffusion pipeline.

Running it on a GPU with the real SD 2.1 weights
------------------------------------------------
1. On a machine with internet (the weights are about 5 GB in fp32, 2.6 GB in fp16):

       pip install -U "huggingface_hub[cli]"
       huggingface-cli download stabilityai/stable-diffusion-2-1-base --local-dir /models/sd21 \\
           --include "model_index.json" "*/*.json" "*/*.txt" "unet/diffusion_pytorch_model.safetensors" \\
                     "vae/diffusion_pytorch_model.safetensors" "text_encoder/model.safetensors"

   (`hf download ...` in newer huggingface_hub) and copy /models/sd21 to the GPU runner. SD 2.1-base
   is 512 px, epsilon-prediction; `stabilityai/stable-diffusion-2-1` (768 px, v-prediction) works
   too (its native resolution, 768, is the default). Any diffusers-format SD 1.x/2.x folder, e.g. a
   mirror of these repositories, works the same way.
2. Point the suite at it: the cifar10 suite's `gpu-sd` preset holds this recipe, so

       bench run --suite cifar10 --preset gpu-sd --sd-path /models/sd21

   is all it takes (`--sd-path` sets `model_path`). In a suite of your own (the generator's parameters
   are part of the generator cache key):

       synthetic:
         generator:
           name: sd_lora
           params:
             model_path: /models/sd21
             resolution: 512          # px; SD 2.1-base's native size (32 px CIFAR images are upsampled)
             rank: 16                 # 8-16: enough for a class-conditional style/content adapter
             train_steps: 2000        # 16 epochs of 1,000 images (100 per class) at batch 8; 1,000-4,000 usual
             batch_size: 8            # at 512 px in bf16 this fits A100/H100 memory with room to spare
             lr: 1.0e-4               # AdamW, constant: the diffusers LoRA recipe
             hflip: true              # natural images
             num_inference_steps: 25
             scheduler: DPMSolverMultistepScheduler   # good samples in 20-25 steps
             guidance_scale: 7.5
             sample_batch_size: 32
             precision: auto          # bf16 on A100/H100 (fp16 where bf16 is missing); fp32 on the CPU
         budget_per_class: 100
         mix_ratio: 0.5

   and run `bench run --suite FILE.yaml --device cuda`. `device: auto` (the default)
   picks CUDA when torch sees it; fit() is not given the run's --device.
The CPU can run this code path (the tests do, on a tiny random model) but not SD 2.1 at useful speed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.api import Conditions, DatasetInfo, Split
from bench.device import resolve_device  # auto: CUDA when present; cuda without CUDA is a BenchError
from bench.errors import BenchError
from bench.progress import current
from bench.registry import GENERATORS

# The UNet's attention projections (self- and cross-attention of every transformer block): where the
# LoRA recipes of diffusers and of the SD fine-tuning literature put the adapters.
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@GENERATORS.register("sd_lora", modalities=("image",), needs_model_path=True)
@dataclass
class StableDiffusionLoRA:
    """Stable Diffusion (a user-supplied diffusers folder) with LoRA adapters trained on the real images.

    The defaults are the GPU recipe for SD 2.1-base except for `model_path`, which has none: see the
    module docstring for where the weights come from and suggested settings."""

    model_path: str | None = None  # a diffusers StableDiffusionPipeline folder (model_index.json, unet/, vae/, ...)
    class_names: list[str] | None = None  # one per class, filling prompt_template; None: the data set's class names
    prompt_template: str = "a photo of a {label}"  # the class prompt for training and plain sampling
    resolution: int | None = None  # px the images are resized to for SD; None: the model's native size
    #                                (UNet sample_size x VAE down-sampling factor: 512 for SD 2.1-base)
    rank: int = 8  # LoRA rank r
    lora_alpha: float | None = None  # LoRA alpha (update scale alpha / r); None: = rank (scale 1)
    lora_dropout: float = 0.0  # dropout on the LoRA path
    train_steps: int = 1000  # optimizer steps
    batch_size: int = 8  # training images per step
    lr: float = 1e-4  # AdamW learning rate, constant (diffusers' LoRA recipe)
    weight_decay: float = 1e-2  # AdamW decoupled weight decay (torch's default)
    max_grad_norm: float = 1.0  # gradient clipping (L2 norm over the LoRA parameters)
    hflip: bool = False  # random horizontal flips while training (natural images; not digits or text)
    num_inference_steps: int = 30  # scheduler steps of a full sample; img2img runs int(steps * strength)
    guidance_scale: float = 7.5  # classifier-free guidance; <= 1: off (one UNet pass per step instead of two)
    negative_prompt: str | None = None  # the unconditional prompt of classifier-free guidance; None: ""
    scheduler: str | None = None  # a diffusers scheduler class to sample with (e.g. DPMSolverMultistepScheduler);
    #                               None: the folder's own
    sample_batch_size: int = 16  # images per pipeline call
    precision: str = "auto"  # weights and autocast: auto (bf16 on CUDA where supported, else fp16; fp32 on
    #                          the CPU), fp32, fp16 or bf16; the LoRA parameters always train in fp32
    device: str = "auto"  # auto (CUDA when present), cpu or cuda[:i]: fit() receives no device from the task


    def __post_init__(self) -> None:
        if self.class_names is not None:
            self.class_names = [str(c) for c in self.class_names]
        checks = [(self.rank >= 1 and self.train_steps >= 1 and self.batch_size >= 1,
                   "rank, train_steps and batch_size must be >= 1"),
                  (self.num_inference_steps >= 1 and self.sample_batch_size >= 1,
                   "num_inference_steps and sample_batch_size must be >= 1"),
                  (self.resolution is None or self.resolution >= 8, "resolution must be >= 8 px or None"),
                  (self.lr > 0 and 0 <= self.lora_dropout < 1, "lr must be > 0 and lora_dropout in [0, 1)"),
                  ("{label}" in self.prompt_template, "prompt_template must contain {label}"),
                  (self.precision in ("auto", *PRECISIONS), "precision must be auto, fp32, fp16 or bf16"),
                  (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
                   "device must be auto, cpu or cuda")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self._pipes: tuple[Any, Any] | None = None  # (text-to-image, image-to-image); never pickled

    # -- the base model ---------------------------------------------------------------------------

    def _dtype(self, device: torch.device) -> torch.dtype:
        if self.precision != "auto":
            return PRECISIONS[self.precision]
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _checked_path(self) -> Path:
        if not self.model_path:
            raise BenchError("generator sd_lora needs the parameter model_path: a local diffusers Stable Diffusion "
                             "folder (e.g. stabilityai/stable-diffusion-2-1-base downloaded with huggingface-cli; "
                             "see method/generators/sd_lora.py); nothing is downloaded")
        path = Path(self.model_path).expanduser()
        if not (path / "model_index.json").is_file():
            what = "has no model_index.json" if path.is_dir() else "does not exist"
            raise BenchError(f"generator sd_lora: model_path {str(path)!r} {what}; it must be a local diffusers "
                             "Stable Diffusion folder (see method/generators/sd_lora.py)")
        return path

    def _load(self, device: torch.device) -> Any:
        """The base StableDiffusionPipeline from model_path, frozen, on `device` in the working precision."""
        path = self._checked_path()
        from diffusers import StableDiffusionPipeline

        dtype = self._dtype(device)
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                path, local_files_only=True, dtype=dtype,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BenchError(f"generator sd_lora: cannot load model_path {str(path)!r} as a Stable Diffusion "
                             f"pipeline: {first}") from exc
        pipe.set_progress_bar_config(disable=True)
        for module in (pipe.unet, pipe.vae, pipe.text_encoder):
            module.requires_grad_(False)
        if pipe.unet.dtype != dtype:  # older diffusers name the keyword torch_dtype and ignore dtype
            pipe.to(dtype=dtype)
        return pipe.to(device)

    def _lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.rank if self.lora_alpha is None else self.lora_alpha,
                          lora_dropout=self.lora_dropout, init_lora_weights="gaussian",
                          target_modules=list(TARGET_MODULES))

    def _resolution(self, pipe: Any) -> int:
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        res = native if self.resolution is None else self.resolution
        # The latents are halved len(block_out_channels) - 1 times in the UNet: sides must divide.
        multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
        if res % multiple:
            raise BenchError(f"generator sd_lora: resolution {res} must be a multiple of {multiple} for this model")
        return res

    def _class_names(self, classes: tuple[str, ...]) -> list[str]:
        num_classes = len(classes)
        names = self.class_names or [str(c) for c in classes]
        if len(names) < num_classes:
            raise BenchError(f"generator sd_lora: class_names has {len(names)} names for {num_classes} classes")
        return names

    # -- images -----------------------------------------------------------------------------------

    def _to_pixels(self, x: np.ndarray | torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
        """uint8 (N, H, W[, C]) -> float32 (N, 3, size, size) in [0, 1] (bicubic up-sampling; grey as RGB)."""
        t = torch.as_tensor(x).to(device)
        t = t.unsqueeze(-1) if t.dim() == 3 else t
        t = t.permute(0, 3, 1, 2).float() / 255
        t = t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        return t.clamp(0, 1)

    def _to_images(self, t: torch.Tensor) -> np.ndarray:
        """float (N, 3, S, S) in [0, 1] -> uint8 of the real images' shape (antialiased down-sampling)."""
        h, w = self.shape_[0], self.shape_[1]
        t = F.interpolate(t.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        if self.channels_ == 1:  # ITU-R BT.601 luma
            t = (t * torch.tensor([0.299, 0.587, 0.114], device=t.device)[:, None, None]).sum(1, keepdim=True)
        out = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return out.reshape(len(out), *self.shape_)

    # -- fit --------------------------------------------------------------------------------------

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "StableDiffusionLoRA":
        self._checked_path()  # before the slow imports: a missing folder fails at once
        x = np.asarray(real.x)
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise ValueError(f"sd_lora needs uint8 images (N, H, W[, C]) with C = 1 or 3, got {x.dtype} {x.shape}")
        names = self.class_names_ = self._class_names(info.classes)
        num_classes = info.num_classes

        from diffusers import DDPMScheduler
        from diffusers.training_utils import cast_training_params
        from peft import get_peft_model_state_dict
        from safetensors.torch import save

        self.shape_, self.num_classes_ = x.shape[1:], num_classes
        self.channels_ = 1 if x.ndim == 3 else x.shape[-1]
        device = resolve_device(self.device)
        dtype = self._dtype(device)
        pipe = self._load(device)
        self.resolution_ = self._resolution(pipe)
        unet, vae = pipe.unet, pipe.vae

        with torch.random.fork_rng(devices=[]):  # the LoRA initialisation, without touching global state
            torch.manual_seed(seed)
            unet.add_adapter(self._lora_config())
        cast_training_params(unet, dtype=torch.float32)  # the adapters train in fp32 over frozen fp16/bf16 weights
        params = [p for p in unet.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the model's training noise schedule
        prediction = noise_scheduler.config.prediction_type
        if prediction not in ("epsilon", "v_prediction"):
            raise BenchError(f"generator sd_lora: unsupported prediction_type {prediction!r} (epsilon or v_prediction)")
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # fp16 gradients underflow

        with torch.no_grad():  # one text embedding per class: the text encoder is frozen
            class_emb = pipe.encode_prompt([self.prompt_template.format(label=names[c]) for c in range(num_classes)],
                                           device, 1, False)[0]
        gen = torch.Generator(device).manual_seed(seed)  # batches, flips, VAE posterior draws, timesteps, noise
        X = torch.as_tensor(x)  # uint8 on the CPU; one batch at a time goes to the device
        Y = torch.as_tensor(np.asarray(real.y), dtype=torch.long)
        n, batch = len(Y), min(self.batch_size, len(Y))
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

        unet.train()
        self.loss_history_: list[tuple[int, float]] = []  # (step, mean loss since the previous entry)
        every, running, status = 50, torch.zeros((), device=device), ""
        with current().task("  sd_lora fit", total=self.train_steps, transient=True) as bar:
            for step in range(1, self.train_steps + 1):
                idx = torch.randint(n, (batch,), generator=gen, device=device).cpu()
                pixels = self._to_pixels(X[idx], self.resolution_, device) * 2 - 1  # the VAE takes [-1, 1]
                if self.hflip:
                    flip = torch.rand(batch, generator=gen, device=device) < 0.5
                    pixels = torch.where(flip[:, None, None, None], pixels.flip(3), pixels)
                with torch.no_grad():
                    latents = vae.encode(pixels.to(dtype)).latent_dist.sample(generator=gen).float()
                    latents = latents * vae.config.scaling_factor
                noise = torch.randn(latents.shape, generator=gen, device=device)
                t = torch.randint(noise_scheduler.config.num_train_timesteps, (batch,), generator=gen, device=device)
                noisy = noise_scheduler.add_noise(latents, noise, t)
                target = noise if prediction == "epsilon" else noise_scheduler.get_velocity(latents, noise, t)
                with autocast:
                    pred = unet(noisy.to(dtype), t, encoder_hidden_states=class_emb[Y[idx].to(device)]).sample
                loss = F.mse_loss(pred.float(), target)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                scaler.step(opt)
                scaler.update()
                running += loss.detach()
                if step % every == 0 or step == self.train_steps:  # one device sync per `every` steps
                    mean = float(running) / (step - (self.loss_history_[-1][0] if self.loss_history_ else 0))
                    self.loss_history_.append((step, mean))
                    running.zero_()
                    status = f"loss {mean:.4f}"
                bar.advance(status=status)
        opt.zero_grad(set_to_none=True)  # the last step's gradients: memory the sampler does not need
        unet.eval()
        state = get_peft_model_state_dict(unet)
        self.lora_weights_ = save({k: v.detach().float().cpu().contiguous() for k, v in state.items()})
        self._pipes = self._with_img2img(pipe)
        return self

    # -- the adapter: pickling, lazy reloading, export --------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pipes"] = None  # the base model is reloaded from model_path, never pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pipes = None

    def _with_img2img(self, pipe: Any) -> tuple[Any, Any]:
        import diffusers

        if self.scheduler is not None:
            cls = getattr(diffusers, self.scheduler, None)
            if cls is None or not hasattr(cls, "from_config"):
                raise BenchError(f"generator sd_lora: unknown diffusers scheduler {self.scheduler!r}")
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        img2img = diffusers.StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
        img2img.set_progress_bar_config(disable=True)
        return pipe, img2img

    def pipelines(self) -> tuple[Any, Any]:
        """(text-to-image, image-to-image) pipelines with the fitted adapter; loads the base model once."""
        if not hasattr(self, "lora_weights_"):
            raise RuntimeError("sd_lora: fit() before sample()")
        if self._pipes is None:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load

            pipe = self._load(resolve_device(self.device))
            pipe.unet.add_adapter(self._lora_config())
            result = set_peft_model_state_dict(pipe.unet, load(self.lora_weights_))
            missing = [k for k in result.missing_keys if "lora_" in k]
            if result.unexpected_keys or missing:
                raise BenchError(f"generator sd_lora: the stored adapter does not fit the model at {self.model_path!r} "
                                 f"({len(result.unexpected_keys)} unexpected, {len(missing)} missing LoRA tensors)")
            pipe.unet.eval()
            self._pipes = self._with_img2img(pipe)
        return self._pipes

    def save_lora(self, folder: str | Path) -> None:
        """The adapter in diffusers' LoRA format (pytorch_lora_weights.safetensors) for `load_lora_weights`."""
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from safetensors.torch import load

        config = self._lora_config().to_dict()
        config["target_modules"] = sorted(config["target_modules"])  # a set in peft's dict: not JSON
        StableDiffusionPipeline.save_lora_weights(
            folder, unet_lora_layers=convert_state_dict_to_diffusers(load(self.lora_weights_)),
            unet_lora_adapter_metadata=config)

    # -- sample -----------------------------------------------------------------------------------

    def prompts(self, labels: np.ndarray) -> list[str]:
        """The class prompt of each label."""
        names = self.class_names_
        return [self.prompt_template.format(label=names[int(c)]) for c in labels]

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        labels = np.asarray(conditions.labels, dtype=np.int64)
        if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= self.num_classes_)):
            raise ValueError(f"need {n} labels in [0, {self.num_classes_}), got {labels}")
        prompts = list(conditions.prompts) if conditions.prompts is not None else self.prompts(labels)
        if len(prompts) != n:
            raise ValueError(f"need {n} prompts, got {len(prompts)}")
        seeds = None if conditions.seeds is None else np.asarray(conditions.seeds)
        strength = 1.0 if seeds is None else float(conditions.strength)
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must lie in [0, 1], got {strength}")
        if seeds is not None and (len(seeds) != n or seeds.shape[1:] != tuple(self.shape_)):
            raise ValueError(f"need {n} seeds of shape {tuple(self.shape_)}, got {seeds.shape}")
        if seeds is not None and int(self.num_inference_steps * strength) == 0:
            return Split(seeds.astype(np.uint8, copy=True), labels)  # no denoising step: the seed itself
        if n == 0:
            return Split(np.zeros((0, *self.shape_), np.uint8), labels)
        text2img, img2img = self.pipelines()
        device = text2img.unet.device
        res = self.resolution_
        # CPU noise: the same rng gives the same images on any device (diffusers moves it over).
        gen = torch.Generator("cpu").manual_seed(int(rng.integers(2**63)))
        common = {"num_inference_steps": self.num_inference_steps, "guidance_scale": self.guidance_scale,
                  "generator": gen, "output_type": "pt"}
        out = []
        for start in range(0, n, self.sample_batch_size):
            stop = min(start + self.sample_batch_size, n)
            batch = {"prompt": prompts[start:stop], **common}
            if self.negative_prompt is not None:
                batch["negative_prompt"] = [self.negative_prompt] * (stop - start)
            if seeds is None or strength == 1:  # strength 1 ignores the seed: plain text-to-image
                images = text2img(height=res, width=res, **batch).images
            else:
                pixels = self._to_pixels(seeds[start:stop], res, device)  # [0, 1]: the pipeline normalises
                images = img2img(image=pixels, strength=strength, **batch).images
            out.append(self._to_images(images))
        return Split(np.concatenate(out), labels)

