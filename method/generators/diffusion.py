"""A class-conditional diffusion generator for images, trained on the real-data budget: from scratch, or
fine-tuned from a UNet pretrained once per data set on its unlabelled training images.

diffusers' `UNet2DModel` with a class embedding (one extra "null" class for classifier-free guidance)
is trained as a DDPM (MSE on the v-prediction target by default, or on the noise; `DDPMScheduler`'s cosine
noise schedule; AdamW, cosine learning rate with warm-up, EMA of the weights through
`diffusers.training_utils.EMAModel`). Samples come from `DPMSolverMultistepScheduler` (DPM-Solver++ 2M)
in `sample_steps` network evaluations (twice that batch size with classifier-free guidance).

Targeted generation:
  - plain class-conditional sampling (no seeds, or strength 1);
  - image-to-image variation by SDEdit (Meng et al. 2022): each seed is noised to the timestep
    t0 = strength * (T - 1) (`add_noise`) and denoised from there with the target label, in
    ceil(strength * sample_steps) steps; strength 0 returns the seed unchanged.

Pretraining (`pretrain_steps` > 0; off by default, and then fit is exactly the from-scratch fit):
the CPU analogue of starting from a pretrained Stable Diffusion. Fitting 0.64 M parameters on 1,000
images learns little on a CPU budget (FID about 367 on cifar10); the data set's training split holds
far more images, and without their labels they are fair game for every strategy (the test split never
is). So the UNet is first trained as the *unconditional* model on the unlabelled training images: every
pretraining image carries the null class of classifier-free guidance, which is exactly the role the
null class keeps in the fine-tuning (label_dropout), so pretraining teaches the model image statistics
through the one class embedding that means "no label", and the class embeddings start from their
initialisation when fine-tuning begins. Then each cell's `fit` fine-tunes those weights on its
labelled budget as the from-scratch fit trains (class labels with label_dropout, the same loss,
optimiser, cosine schedule and EMA, the EMA starting from the pretrained weights) for `finetune_steps`
steps.

  - Who pretrains: bench.generator.fitted_generator, through the optional hooks `pretraining()` (what
    the pretraining depends on: its cache key) and `pretrain(x, info, seed)` (returns the pretrained
    state, cached on disk apart from the fitted generators and shared by every seed, budget and
    strategy that samples the same setting); `fit(..., pretrained=state)` fine-tunes from it. The
    images are the whole training split's (budget, validation and pool: the same set for every seed,
    in a canonical order), never a label: pretrain() takes no labels at all.
  - Schedule: linear warm-up over `warmup_steps`, then a constant learning rate `lr` with the EMA of
    the weights (DDPM's recipe), rather than a decay to 0 at a set end: the weights after k steps are
    then the same whatever the total, so one run gives the whole curve (benchmarks/diffusion_pretraining.py)
    and longer pretraining extends a shorter one's trajectory.
  - Cost: 0.42 CPU-s per step of batch 32 at the cifar10 suite's CPU size (one AVX2 thread), a one-off
    per data set and setting: see bench.generator for how it is recorded and charged.

Images are uint8 (N, H, W, C) with C = 1 or 3 (or (N, H, W)); they are scaled to [-1, 1], laid out NCHW
and padded (edge replication) to a multiple of the UNet's total down-sampling factor, and samples are
cropped back to the input size.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Collection, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from bench.api import Conditions, DatasetInfo, Split
from bench.device import resolve_device  # auto: CUDA when present; cuda without CUDA is a BenchError
from bench.progress import current
from bench.registry import GENERATORS


@GENERATORS.register("diffusion", modalities=("image",), version=2)  # 2: float32 by default (bf16 was)
@dataclass
class ClassConditionalDiffusion:
    """A class-conditional DDPM (diffusers UNet2DModel) trained on the real images.

    The defaults are sized for the 2-core CPU: a 1.07 M-parameter UNet, 1,500 steps at batch 64, in
    float32. bfloat16 autocast (`bf16: true`) pays on GPUs and on CPUs with native bf16 arithmetic
    (AVX-512 BF16, AMX) only: on an AVX2 CPU it is several times slower per step than float32 (README,
    "Generators", gives the measurement). Cheaper on the CPU: batch_size 32 or block_out_channels
    (16, 32, 64), as the cifar10 suite's CPU preset does. Full size for a GPU preset, roughly DDPM's
    CIFAR-10 model:

        block_out_channels: [128, 256, 256, 256]   # 35.8 M parameters
        layers_per_block: 2
        attention_levels: [1]                      # self-attention at 16x16 for 32x32 inputs
        train_steps: 100000                        # 50k-100k
        max_epochs: null                           # no cap: 100k steps are 12,800 epochs of 1,000 images
        batch_size: 128
        lr: 2.0e-4
        warmup_steps: 5000
        ema_decay: 0.9999
        hflip: true                                # CIFAR-10; not for digits or text
        sample_steps: 50
        guidance_scale: 2.0                        # classifier-free guidance (label_dropout 0.1)
    """

    block_out_channels: tuple[int, ...] = (32, 64, 64)  # channels per resolution level; levels - 1 halvings
    layers_per_block: int = 1  # ResNet blocks per level (the decoder has one more)
    attention_levels: tuple[int, ...] = ()  # levels (0 = full resolution) with self-attention
    mid_attention: bool = True  # self-attention in the bottleneck (8x8 tokens for 32x32 inputs: cheap)
    train_steps: int = 1500  # optimizer steps (about 96 epochs of 1,000 images at batch 64)
    # Pretraining on the data set's unlabelled training images (see the module docstring). The three are
    # left out of the cache key and of the cell record while None, so results made before they existed
    # keep their keys and hashes.
    pretrain_steps: int | None = field(default=None, metadata={"omit_if_none": True})  # optimizer steps of
    #   unconditional pretraining, once per data set and setting (batch_size, lr; None or 0: off, from scratch)
    pretrain_images: int | None = field(default=None, metadata={"omit_if_none": True})  # training images
    #   it reads (a subset fixed by its size alone; None: the whole training split, 50,000 on cifar10)
    finetune_steps: int | None = field(default=None, metadata={"omit_if_none": True})  # fit's steps from the
    #   pretrained weights (capped by max_epochs like train_steps; None: train_steps); unused without pretraining
    max_epochs: float | None = 100.0  # caps the steps at this many passes over the data, so small data
    #                                   sets train for less (None: no cap; set None for long GPU runs)
    batch_size: int = 64  # training batch (at most the number of images) and sampling batch
    lr: float = 1e-3  # AdamW peak learning rate (high for the short CPU schedule; 2e-4 for long runs)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 100  # linear warm-up (at most a tenth of the steps), then cosine decay to 0
    ema_decay: float | None = 0.995  # EMA of the weights (~200-step horizon); None or 0: off
    label_dropout: float = 0.1  # share of training labels replaced by the null class (needed for guidance)
    guidance_scale: float = 1.0  # classifier-free guidance w: out_u + w (out_c - out_u); <= 1: off (no cost)
    num_train_timesteps: int = 1000  # T of the forward process
    beta_schedule: str = "squaredcos_cap_v2"  # cosine schedule (Nichol & Dhariwal): better at low resolution
    prediction_type: str = "v_prediction"  # the network's target: v (Salimans & Ho) or epsilon; with eps,
    #                                        x0 = (x_t - sigma_t eps) / alpha_t is ill-conditioned near t = T
    sample_steps: int = 20  # DPM-Solver++ steps for a full sample (strength 1)
    hflip: bool = False  # random horizontal flips during training (augmentation for natural images)
    bf16: bool = False  # bfloat16 autocast in training and sampling: for A100/H100 and CPUs with AVX-512 BF16/AMX
    device: str = "auto"  # auto (CUDA when present), cpu or cuda: fit() receives no device from the task


    def __post_init__(self) -> None:
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)  # YAML gives lists
        if self.pretrain_steps == 0:  # off, as None: the same cache key and cell record as before it existed
            self.pretrain_steps = None
        self.attention_levels = tuple(int(i) for i in self.attention_levels)
        checks = [(len(self.block_out_channels) >= 1 and all(c > 0 for c in self.block_out_channels),
                   "block_out_channels must be a non-empty list of positive integers"),
                  (all(0 <= i < len(self.block_out_channels) for i in self.attention_levels),
                   "attention_levels must index block_out_channels"),
                  (self.train_steps >= 1 and self.batch_size >= 1 and self.sample_steps >= 1,
                   "train_steps, batch_size and sample_steps must be >= 1"),
                  (self.pretrain_steps is None or self.pretrain_steps >= 0, "pretrain_steps must be >= 0"),
                  (self.pretrain_images is None or self.pretrain_images >= 1, "pretrain_images must be >= 1"),
                  (self.finetune_steps is None or self.finetune_steps >= 1, "finetune_steps must be >= 1"),
                  (0 <= self.label_dropout < 1, "label_dropout must lie in [0, 1)"),
                  (self.guidance_scale <= 1 or self.label_dropout > 0,
                   "guidance_scale > 1 needs label_dropout > 0 (the unconditional model is the null class)"),
                  (self.ema_decay is None or 0 <= self.ema_decay < 1, "ema_decay must lie in [0, 1)"),
                  (self.prediction_type in ("v_prediction", "epsilon"), "prediction_type must be v_prediction or epsilon"),
                  (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    # -- shapes ---------------------------------------------------------------------------------

    @property
    def _multiple(self) -> int:
        """The UNet halves the resolution between levels: sides must divide by 2^(levels - 1)."""
        return 2 ** (len(self.block_out_channels) - 1)

    def _to_model(self, x: np.ndarray, device: torch.device) -> torch.Tensor:
        """uint8 (N, H, W[, C]) -> float32 (N, C, H', W') in [-1, 1], padded by edge replication."""
        t = torch.as_tensor(np.asarray(x)).to(device)
        t = t.unsqueeze(-1) if t.dim() == 3 else t
        t = t.permute(0, 3, 1, 2).float() / 127.5 - 1
        return F.pad(t, self.pad_, mode="replicate") if any(self.pad_) else t

    def _to_images(self, t: torch.Tensor) -> np.ndarray:
        """float (N, C, H', W') in [-1, 1] -> uint8 of the input's shape (the padding cropped off)."""
        left, _, top, _ = self.pad_
        h, w = self.shape_[0], self.shape_[1]
        t = t[:, :, top : top + h, left : left + w]
        out = ((t.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return out.reshape(len(out), *self.shape_)

    def _build(self, channels: int, num_classes: int) -> Any:
        from diffusers import UNet2DModel

        levels = len(self.block_out_channels)
        down = tuple("AttnDownBlock2D" if i in self.attention_levels else "DownBlock2D" for i in range(levels))
        up = tuple("AttnUpBlock2D" if i in self.attention_levels else "UpBlock2D" for i in reversed(range(levels)))
        return UNet2DModel(
            sample_size=self.padded_size_, in_channels=channels, out_channels=channels,
            down_block_types=down, up_block_types=up, block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block, add_attention=self.mid_attention,
            norm_num_groups=math.gcd(32, *self.block_out_channels),  # GroupNorm groups must divide channels
            attention_head_dim=8,  # heads = channels / 8
            num_class_embeds=num_classes + 1,  # the last class is the null class of classifier-free guidance
        )

    # -- fit ------------------------------------------------------------------------------------

    def _prepare(self, x: np.ndarray, num_classes: int) -> int:
        """Check the images and set the geometry every fitted generator carries; returns the channels."""
        from diffusers import DDPMScheduler

        if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise ValueError(f"diffusion needs uint8 images (N, H, W[, C]) with C = 1 or 3, got {x.dtype} {x.shape}")
        self.shape_, self.num_classes_ = x.shape[1:], num_classes
        h, w = x.shape[1], x.shape[2]
        m = self._multiple
        ph, pw = -h % m, -w % m  # pixels to add so both sides divide by the down-sampling factor
        self.pad_ = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # F.pad order: left, right, top, bottom
        self.padded_size_ = (h + ph, w + pw)
        self.scheduler_config_ = dict(DDPMScheduler(num_train_timesteps=self.num_train_timesteps,
                                                    beta_schedule=self.beta_schedule,
                                                    prediction_type=self.prediction_type).config)
        return 1 if x.ndim == 3 else x.shape[-1]

    def pretraining(self) -> dict[str, Any] | None:
        """What the pretraining depends on (bench.generator keys its cache entry with it, the data set and its
        images; `examples`: how many of the training images it reads, None: all); None: no pretraining."""
        if not self.pretrain_steps:
            return None
        names = ("block_out_channels", "layers_per_block", "attention_levels", "mid_attention", "batch_size", "lr",
                 "weight_decay", "warmup_steps", "ema_decay", "num_train_timesteps", "beta_schedule",
                 "prediction_type", "hflip", "bf16", "pretrain_steps")
        return {**{k: getattr(self, k) for k in names}, "examples": self.pretrain_images}

    def pretrain(self, x: np.ndarray, info: DatasetInfo, seed: int) -> dict[str, Any]:
        """The unconditional model (every image labelled with the null class) trained on unlabelled images `x`
        for `pretrain_steps` steps: the state `fit(..., pretrained=...)` fine-tunes. Reads no labels."""
        if not self.pretrain_steps:
            raise ValueError("pretrain() needs pretrain_steps >= 1")
        return dict(self.pretrain_snapshots(x, info, seed, at=(self.pretrain_steps,)))[self.pretrain_steps]

    def pretrain_snapshots(self, x: np.ndarray, info: DatasetInfo, seed: int, at: Collection[int]
                           ) -> Iterator[tuple[int, dict[str, Any]]]:
        """pretrain()'s state after each step count in `at`, yielded as it is reached in one run of max(at)
        steps (a curve at the cost of its longest point): with the learning rate constant after warm-up, each
        equals a pretrain() of that many steps. A state's `cpu_seconds` count the run up to it (this process,
        all threads; not the time the caller spends between yields)."""
        x = np.asarray(x)
        channels = self._prepare(x, info.num_classes)
        device = resolve_device(self.device)
        cpu, spent = time.process_time(), 0.0
        with torch.random.fork_rng(devices=[]):  # the UNet's initialisation, without touching global state
            torch.manual_seed(seed)
            unet = self._build(channels, info.num_classes).to(device)
        gen = torch.Generator(device).manual_seed(seed)
        null = torch.full((len(x),), info.num_classes, dtype=torch.long, device=device)  # no label: the null class
        opt = torch.optim.AdamW(unet.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(1, self.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))  # then constant
        for step, weights in self._train(unet, torch.as_tensor(x).to(device), null, max(at), opt, sched, gen, device,
                                         "  diffusion pretrain", at=set(at)):
            spent += time.process_time() - cpu
            yield step, {"unet": weights.eval().cpu(), "shape": tuple(self.shape_), "num_classes": info.num_classes,
                         "steps": step, "examples": len(x), "cpu_seconds": spent, "loss_history": list(self.loss_history_)}
            cpu = time.process_time()

    def fit(self, real: Split, info: DatasetInfo, seed: int, pretrained: dict[str, Any] | None = None
            ) -> "ClassConditionalDiffusion":
        """Train on the labelled budget `real`: from scratch, or (with pretraining on) fine-tune `pretrained`,
        pretrain()'s state, for finetune_steps steps."""
        from diffusers.optimization import get_cosine_schedule_with_warmup

        if (pretrained is None) != (not self.pretrain_steps):
            raise ValueError("pretrain_steps >= 1 needs the pretrained state (fit through bench.generator, or pass "
                             "pretrained=pretrain(...)); without pretraining, pass none")
        x = np.asarray(real.x)
        num_classes = info.num_classes
        channels = self._prepare(x, num_classes)
        device = resolve_device(self.device)
        if pretrained is None:
            with torch.random.fork_rng(devices=[]):  # the UNet's initialisation, without touching global state
                torch.manual_seed(seed)
                unet = self._build(channels, num_classes).to(device)
        else:
            if (tuple(pretrained["shape"]), pretrained["num_classes"]) != (tuple(self.shape_), num_classes):
                raise ValueError(f"pretrained on {pretrained['num_classes']} classes of {tuple(pretrained['shape'])} "
                                 f"images, fitting {num_classes} classes of {tuple(self.shape_)}")
            unet = copy.deepcopy(pretrained["unet"]).to(device)
        gen = torch.Generator(device).manual_seed(seed)  # batches, timesteps, noise, label dropout, flips
        Y = torch.as_tensor(np.asarray(real.y), dtype=torch.long, device=device)
        n = len(Y)
        batch = min(self.batch_size, n)
        steps = self.train_steps if pretrained is None or self.finetune_steps is None else self.finetune_steps
        if self.max_epochs is not None:
            steps = max(1, min(steps, math.ceil(self.max_epochs * n / batch)))
        opt = torch.optim.AdamW(unet.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = get_cosine_schedule_with_warmup(opt, min(self.warmup_steps, steps // 10), steps)
        for _ in self._train(unet, torch.as_tensor(x).to(device), Y, steps, opt, sched, gen, device, "  diffusion fit"):
            pass  # no snapshots: trains `unet` in place, ending with its EMA weights
        self.train_steps_ = steps
        self.pretrained_steps_ = 0 if pretrained is None else pretrained["steps"]
        self.pretrained_examples_ = 0 if pretrained is None else pretrained["examples"]
        self.unet_ = unet.eval().cpu()  # pickled to the generator cache: CPU tensors load anywhere
        return self

    def _train(self, unet: Any, X: torch.Tensor, Y: torch.Tensor, steps: int, opt: torch.optim.Optimizer,
               sched: Any, gen: torch.Generator, device: torch.device, title: str, at: Collection[int] = ()
               ) -> Iterator[tuple[int, Any]]:
        """`steps` optimizer steps of the DDPM loss on uint8 images X (on the device) with labels Y (label_dropout
        of them replaced by the null class), in place: run it to its end, and `unet` holds the EMA weights. After
        each step in `at` it yields (step, a copy of the UNet with the EMA weights)."""
        from diffusers import DDPMScheduler
        from diffusers.training_utils import EMAModel

        noise_scheduler = DDPMScheduler.from_config(self.scheduler_config_)
        ema = EMAModel(unet.parameters(), decay=self.ema_decay, foreach=True) if self.ema_decay else None
        null = torch.tensor(self.num_classes_, device=device)
        n = len(Y)
        batch = min(self.batch_size, n)
        unet.train()
        self.loss_history_: list[tuple[int, float]] = []  # (step, mean loss over the last `every` steps)
        every, running, status = 50, torch.zeros((), device=device), ""
        with current().task(title, total=steps, transient=True) as bar:
            for step in range(1, steps + 1):
                idx = torch.randint(n, (batch,), generator=gen, device=device)
                x0 = self._to_model(X[idx], device)
                if self.hflip:
                    flip = torch.rand(batch, generator=gen, device=device) < 0.5
                    x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
                labels = torch.where(torch.rand(batch, generator=gen, device=device) < self.label_dropout, null, Y[idx])
                noise = torch.randn(x0.shape, generator=gen, device=device)
                t = torch.randint(self.num_train_timesteps, (batch,), generator=gen, device=device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    pred = unet(noise_scheduler.add_noise(x0, noise, t), t, class_labels=labels).sample
                target = noise if self.prediction_type == "epsilon" else noise_scheduler.get_velocity(x0, noise, t)
                loss = F.mse_loss(pred.float(), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
                opt.step()
                sched.step()
                if ema is not None:
                    ema.step(unet.parameters())
                running += loss.detach()
                if step % every == 0 or step == steps:  # one device sync per `every` steps
                    mean = float(running) / (step - (self.loss_history_[-1][0] if self.loss_history_ else 0))
                    self.loss_history_.append((step, mean))
                    running.zero_()
                    status = f"loss {mean:.4f}"
                bar.advance(status=status)
                if step in at:
                    weights = copy.deepcopy(unet)
                    if ema is not None:
                        ema.copy_to(weights.parameters())
                    yield step, weights
        if ema is not None:
            ema.copy_to(unet.parameters())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        unet = state.get("unet_")
        if unet is not None and next(unet.parameters()).device.type != "cpu":  # moved by sample()
            state["unet_"] = copy.deepcopy(unet).cpu()
        return state

    # -- sample ---------------------------------------------------------------------------------

    def timesteps(self, strength: float) -> list[int]:
        """The solver's timesteps from t0 = strength * (T - 1) down, ceil(strength * sample_steps) of them."""
        t0 = round(strength * (self.num_train_timesteps - 1))
        k = max(1, math.ceil(strength * self.sample_steps))
        ts = np.unique(np.linspace(t0, 0, k + 1)[:-1].round().astype(np.int64))[::-1]
        return ts.tolist()

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        from diffusers import DPMSolverMultistepScheduler

        labels = np.asarray(conditions.labels, dtype=np.int64)
        if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= self.num_classes_)):
            raise ValueError(f"need {n} labels in [0, {self.num_classes_}), got {labels}")
        seeds = None if conditions.seeds is None else np.asarray(conditions.seeds)
        strength = 1.0 if seeds is None else float(conditions.strength)
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must lie in [0, 1], got {strength}")
        if seeds is not None and strength == 0:
            return Split(seeds.astype(np.uint8, copy=True).reshape(n, *self.shape_), labels)
        device = resolve_device(self.device)
        unet = self.unet_.to(device).eval()  # outside inference mode: its parameters stay ordinary tensors
        # DPM-Solver++ 2M; its x0 predictions clipped to the pixel range [-1, 1] (thresholding with s = 1, as
        # DDIM's clip_sample): near t = T a small error in the network's output is a large one in x0
        solver = DPMSolverMultistepScheduler.from_config(self.scheduler_config_, thresholding=True, sample_max_value=1.0)
        ts = self.timesteps(strength)
        gen = torch.Generator(device).manual_seed(int(rng.integers(2**63)))
        out = []
        for start in range(0, n, self.batch_size):
            out.append(self._sample_batch(unet, solver, ts, labels[start : start + self.batch_size],
                                          None if seeds is None else seeds[start : start + self.batch_size],
                                          strength, gen, device))
        images = np.concatenate(out) if out else np.zeros((0, *self.shape_), np.uint8)
        return Split(images, labels)

    @torch.inference_mode()
    def _sample_batch(self, unet: Any, solver: Any, ts: list[int], labels: np.ndarray, seeds: np.ndarray | None,
                      strength: float, gen: torch.Generator, device: torch.device) -> np.ndarray:
        b = len(labels)
        y = torch.as_tensor(labels, device=device)
        guided = self.guidance_scale > 1
        if guided:
            y = torch.cat([y, torch.full_like(y, self.num_classes_)])
        solver.set_timesteps(timesteps=ts, device=device)  # also resets the multistep history
        noise = torch.randn((b, unet.config.in_channels, *self.padded_size_), generator=gen, device=device)
        if seeds is None or strength == 1:
            x = noise * solver.init_noise_sigma
        else:  # SDEdit: the seed, noised to the first timestep
            x = solver.add_noise(self._to_model(seeds, device), noise, solver.timesteps[:1])
        for t in solver.timesteps:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                pred = unet(torch.cat([x, x]) if guided else x, t, class_labels=y).sample.float()  # v or eps
            if guided:  # classifier-free guidance, linear in the prediction
                cond, uncond = pred.chunk(2)
                pred = uncond + self.guidance_scale * (cond - uncond)
            x = solver.step(pred, t, x).prev_sample
        return self._to_images(x)
