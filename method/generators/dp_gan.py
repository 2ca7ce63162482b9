"""`dp_gan`: a class-conditional GAN whose discriminator trains with DP-SGD through Opacus, the plan's
"DP-compliant GAN" (as in Xie et al. 2018, "Differentially Private Generative Adversarial Network",
and Opacus' DCGAN example).

Why the generator is private: only the discriminator D touches real examples, and its every update is
a DP-SGD step (Poisson-sampled batch, per-example gradients clipped to `max_grad_norm`, Gaussian
noise, privacy spent tracked by Opacus' accountant). The generator G is trained on D's outputs for
G's own samples, i.e. on a function of D's privatised parameters alone; by the post-processing
property, G, its samples and anything trained on them only are (epsilon, delta)-DP with respect to the
real examples. Details that keep that argument true:

* A D step is one DP-SGD step on [Poisson batch of real examples; `batch_size` fakes]. The fake count
  is fixed, never data-dependent, so adding or removing one real example changes the sum of clipped
  per-example gradients by one row, at most `max_grad_norm`; the fake rows are functions of G and D.
* Fake labels are drawn uniformly over the classes, not from the real class prior (which is private).
* G's optimiser is a plain torch optimiser: its steps are not DP steps and are not accounted (they
  read no real data); during G's step D's per-example gradient hooks are off.
* The fitted record keeps only losses computed on fake examples (D's loss on fakes, G's loss); D's
  loss on real batches would be a non-private statistic of the data.
* Images are scaled from the public uint8 range [0, 255]; tables with a schema (bench.table) from each
  column's public domain [low, high] to [-1, 1], categories one-hot (`TableCodec`); plain numeric
  vectors are used as they are
  (`standardize: true` scales them by the real examples' mean and standard deviation, which the DP
  guarantee does NOT cover: recorded as `preprocessing_private_ = False`).
* Opacus runs with `secure_mode=False` (torchcsprng is not installed): noise and sampling come from
  torch's pseudo-random generator, seeded for reproducibility, the usual research setting.

Two variants, picked from the input shape: a small DCGAN-like conv net for uint8 images (N, H, W, C)
of any size (the nets work at the next size 4 * 2^k >= max(H, W), e.g. 32 for 28x28 or 32x32, and
samples are resized back, bilinear with antialiasing), and an MLP for tables and numeric vectors (N, D),
whose generator ends in a Gumbel-softmax per categorical column when the data set has a schema. Both
discriminators are projection discriminators (Miyato & Koyama 2018: logit = w.h + embed(y).h) with
GroupNorm or no normalisation (BatchNorm mixes examples and has no per-example gradients, so Opacus
refuses it); the conv generator uses BatchNorm, over fakes only. Against the collapse of a
conditional GAN onto one sample per class (which both the toy problem and CIFAR-10 showed without
it), G's loss has the mode-seeking term of Mao et al. 2019.

Conditions: target labels. Seed examples are not supported and ignored (a GAN has no encoder to vary
a seed with); `strength` is therefore ignored too. The networks train on `device` (auto: CUDA when
present); the fitted generator is kept, and samples, on the CPU.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.api import Conditions, DatasetInfo, Split
from bench.device import resolve_device  # auto: CUDA when present; cuda without CUDA is a BenchError
from bench.errors import BenchError
from bench.registry import GENERATORS


class _ProjectionHead(nn.Module):
    """logit(h, y) = w.h + b + embed(y).h: the class enters as an inner product with the features."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(self.embed.weight)  # the default N(0, 1) makes huge initial logits

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)  # GroupNorm needs a divisor of the channel count; at most 8 groups


class _ConvGenerator(nn.Module):
    """(z, y) -> a (channels, 4 * 2^levels, same) image in [-1, 1]: a linear map to 4x4 features,
    then `levels` transposed convolutions (with BatchNorm: G is not wrapped by Opacus, and its batches
    are fakes) that double the resolution and halve the channels."""

    def __init__(self, latent_dim: int, num_classes: int, channels: int, width: int, levels: int) -> None:
        super().__init__()
        c = width * 2 ** (levels - 1)  # channels at 4x4; width at full resolution
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.stem = nn.Sequential(nn.Linear(2 * latent_dim, c * 16), nn.ReLU())
        self.c0 = c
        blocks: list[nn.Module] = []
        for _ in range(levels):
            out = max(width // 2, c // 2)
            blocks += [nn.ConvTranspose2d(c, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        blocks += [nn.Conv2d(c, channels, 3, padding=1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.stem(torch.cat([z, self.embed(y)], dim=1))
        return self.blocks(h.view(len(z), self.c0, 4, 4))


class _ConvDiscriminator(nn.Module):
    """A (channels, 4 * 2^levels, same) image and its label -> one logit: `levels` stride-2
    convolutions down to 4x4 (channels width, 2 width, 4 width, ...), GroupNorm, a projection head."""

    def __init__(self, num_classes: int, channels: int, width: int, levels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for i in range(levels):
            out = width * 2**i
            layers.append(nn.Conv2d(c, out, 4, stride=2, padding=1))
            if i > 0:  # no normalisation on the input layer (DCGAN practice)
                layers.append(nn.GroupNorm(_groups(out), out))
            layers.append(nn.LeakyReLU(0.2))
            c = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = _ProjectionHead(c * 16, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), y)


class _MLPGenerator(nn.Module):
    """(z, y) -> a numeric vector: two hidden layers, a linear (unbounded) output; for a table, `blocks`
    (start, width) of one-hot categories get a Gumbel-softmax each (temperature 0.2, as CTGAN: near
    one-hot yet differentiable) and the numbers, scaled to [-1, 1], a tanh."""

    def __init__(self, latent_dim: int, num_classes: int, dim: int, hidden: int,
                 blocks: list[tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.net = nn.Sequential(nn.Linear(2 * latent_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, dim))
        self.blocks = blocks

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([z, self.embed(y)], dim=1))
        if self.blocks is None:
            return out
        parts, done = [], 0
        for start, width in self.blocks:  # the numbers before each block, then the block
            parts.append(torch.tanh(out[:, done:start]))
            parts.append(F.gumbel_softmax(out[:, start:start + width], tau=0.2, dim=1))
            done = start + width
        parts.append(torch.tanh(out[:, done:]))
        return torch.cat(parts, dim=1)


class _MLPDiscriminator(nn.Module):
    def __init__(self, num_classes: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2),
                                      nn.Linear(hidden, hidden), nn.LeakyReLU(0.2))
        self.head = _ProjectionHead(hidden, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), y)


class TableCodec:
    """Table rows (bench.table) <-> the GAN's vectors: each number scaled from its PUBLIC domain
    [low, high] (the schema's, not the data's, so the scaling spends no privacy) to [-1, 1], each
    category one-hot; decoding takes the most likely category and clips numbers to the domain."""

    def __init__(self, schema: Any) -> None:
        missing = [c.name for c in schema.columns if c.kind == "numeric" and (c.low is None or c.high is None)]
        if missing:
            raise BenchError(f"dp_gan needs public bounds (low, high) for every numeric column; missing: {', '.join(missing)}")
        self.schema = schema
        self.blocks: list[tuple[int, int]] = []
        self.offsets, width = [], 0
        for c in schema.columns:
            self.offsets.append(width)
            if c.kind == "categorical":
                self.blocks.append((width, len(c.categories)))
                width += len(c.categories)
            else:
                width += 1
        self.width = width

    def encode(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.width), dtype=np.float32)
        for j, (c, o) in enumerate(zip(self.schema.columns, self.offsets)):
            if c.kind == "categorical":
                out[np.arange(len(x)), o + np.rint(x[:, j]).astype(int)] = 1.0
            else:
                out[:, o] = 2 * (x[:, j] - c.low) / max(c.high - c.low, 1e-12) - 1
        return out

    def decode(self, v: np.ndarray) -> np.ndarray:
        x = np.empty((len(v), len(self.schema.columns)), dtype=np.float64)
        for j, (c, o) in enumerate(zip(self.schema.columns, self.offsets)):
            if c.kind == "categorical":
                x[:, j] = v[:, o:o + len(c.categories)].argmax(axis=1)
            else:
                x[:, j] = (v[:, o].astype(np.float64) + 1) / 2 * (c.high - c.low) + c.low
        return self.schema.clean(x)


@contextlib.contextmanager
def _public(disc: Any) -> Iterator[None]:
    """Passes through the private discriminator that read no real data (fakes, the generator's step):
    Opacus computes no per-example gradients for them."""
    disc.disable_hooks()
    try:
        yield
    finally:
        disc.enable_hooks()


def _levels(height: int, width: int) -> int:
    """Doublings from 4x4 to the working resolution 4 * 2^k >= max(height, width), at least one."""
    return max(1, math.ceil(math.log2(max(height, width) / 4)))


@GENERATORS.register("dp_gan", modalities=("image", "tabular", "vector"))
@dataclass
class DPGAN:
    """A class-conditional GAN, (target_epsilon, delta)-DP through DP-SGD on its discriminator.

    The noise multiplier is chosen by Opacus (`make_private_with_epsilon`) so that `epochs` passes
    over the real examples (Poisson batches of expected size `batch_size`) spend `target_epsilon`;
    the epsilon actually spent, `epsilon_`, is read back from the accountant after training."""

    target_epsilon: float = 10.0  # privacy budget epsilon for the whole fit
    delta: float | None = None  # None: 1 / n, n = real training examples (a loose, common choice)
    max_grad_norm: float = 1.0  # per-example gradient clipping bound C of DP-SGD (L2 norm)
    accountant: str = "rdp"  # Opacus accountant: "rdp" (fast, the usual bound), "prv" (tighter, slower)
    epochs: int = 30  # passes over the real data; the noise grows with them at a fixed epsilon
    batch_size: int = 64  # expected Poisson batch of real examples per D step; fakes per D and G step
    # Adam learning rates (betas 0.5, 0.999 as in DCGAN), D's four times G's (the two time-scale
    # update rule, Heusel et al. 2017): with equal rates (5e-4) G overshot the noisy D, and the toy
    # problem's class means landed up to 2-3 times too far out.
    lr_d: float = 2e-3
    lr_g: float = 5e-4
    mode_seeking: float = 1.0  # weight of G's mode-seeking term (0: off; off, G collapsed per class)
    d_steps: int = 1  # discriminator (DP) steps per generator step
    latent_dim: int = 32  # dimensions of z (and of the generator's label embedding)
    width: int = 16  # conv variant: D's channels at full resolution, doubling at each halving
    hidden: int = 128  # MLP variant (tables): hidden units per layer of both nets
    standardize: bool = False  # MLP variant: scale features by the real mean/std (NOT private, see above)
    device: str = "auto"  # where fit() trains: auto (CUDA when present), cpu or cuda; not part of the cache key


    # -- encoding between the data's representation and the networks' -------------------------------

    def _encode(self, x: np.ndarray) -> torch.Tensor:
        if self.variant_ == "table":
            return torch.from_numpy(self._table_codec().encode(x))
        if self.variant_ == "image":
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 127.5 - 1
            if t.shape[-2:] != (self.size_, self.size_):
                t = F.interpolate(t, size=(self.size_, self.size_), mode="bilinear", antialias=True,
                                  align_corners=False)
            return t.contiguous()
        return torch.from_numpy(((x - self.mean_) / self.scale_).astype(np.float32))

    def _table_codec(self) -> "TableCodec":
        return TableCodec(self.schema_)

    def _decode(self, t: torch.Tensor) -> np.ndarray:
        if self.variant_ == "table":
            return self._table_codec().decode(t.numpy())
        if self.variant_ == "image":
            h, w = self.shape_[:2]
            if t.shape[-2:] != (h, w):
                t = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            t = ((t.clamp(-1, 1) + 1) * 127.5).round()
            return t.permute(0, 2, 3, 1).numpy().astype(np.uint8)
        x = t.numpy().astype(np.float64) * self.scale_ + self.mean_
        if np.issubdtype(self.dtype_, np.integer):
            x = np.rint(x)
        return x.astype(self.dtype_)

    # -- fit and sample ----------------------------------------------------------------------------

    def _build(self, x: np.ndarray, num_classes: int, schema: Any) -> tuple[nn.Module, nn.Module]:
        if x.ndim == 4:
            if x.dtype != np.uint8:
                raise BenchError(f"dp_gan: images must be uint8 (N, H, W, C), got {x.dtype}")
            self.variant_ = "image"
            levels = _levels(x.shape[1], x.shape[2])
            self.size_ = 4 * 2**levels  # working resolution (pixels)
            channels = x.shape[3]
            return (_ConvGenerator(self.latent_dim, num_classes, channels, self.width, levels),
                    _ConvDiscriminator(num_classes, channels, self.width, levels))
        if x.ndim == 2 and schema is not None:
            self.variant_ = "table"
            self.schema_ = schema
            codec = self._table_codec()
            return (_MLPGenerator(self.latent_dim, num_classes, codec.width, self.hidden, codec.blocks),
                    _MLPDiscriminator(num_classes, codec.width, self.hidden))
        if x.ndim == 2:
            self.variant_ = "tabular"
            flat = x.astype(np.float64)
            self.mean_ = flat.mean(0) if self.standardize else np.zeros(x.shape[1])
            self.scale_ = np.maximum(flat.std(0), 1e-8) if self.standardize else np.ones(x.shape[1])
            return (_MLPGenerator(self.latent_dim, num_classes, x.shape[1], self.hidden),
                    _MLPDiscriminator(num_classes, x.shape[1], self.hidden))
        raise BenchError(f"dp_gan: inputs must be images (N, H, W, C) or numeric vectors (N, D), got shape {x.shape}")

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "DPGAN":
        from opacus import PrivacyEngine  # imported here: opacus is slow to import and only needed to fit

        x, y = np.asarray(real.x), np.asarray(real.y, dtype=np.int64)
        num_classes = info.num_classes
        self.shape_, self.dtype_, self.num_classes_ = x.shape[1:], x.dtype, num_classes
        n = len(x)
        self.delta_ = float(self.delta) if self.delta is not None else 1.0 / n
        self.preprocessing_private_ = not (x.ndim == 2 and self.standardize)
        device = resolve_device(self.device)
        start = time.perf_counter()
        # Network initialisation, Poisson sampling, DP noise and latents all come from torch's global
        # generators (CPU and CUDA): seed them, and restore them afterwards so the caller's random
        # streams are untouched.
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), warnings.catch_warnings():
            torch.manual_seed(seed)
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")  # secure_mode off: see docstring
            # Opacus' hooks on D's first layer fire although its input needs no gradient: harmless.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            gen, disc = (net.to(device) for net in self._build(x, num_classes, info.schema))
            data = torch.utils.data.TensorDataset(self._encode(x), torch.from_numpy(y))
            loader = torch.utils.data.DataLoader(data, batch_size=min(self.batch_size, n))
            opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr_d, betas=(0.5, 0.999))
            opt_g = torch.optim.Adam(gen.parameters(), lr=self.lr_g, betas=(0.5, 0.999))
            engine = PrivacyEngine(accountant=self.accountant)
            disc, opt_d, loader = engine.make_private_with_epsilon(
                module=disc, optimizer=opt_d, data_loader=loader, target_epsilon=self.target_epsilon,
                target_delta=self.delta_, epochs=self.epochs, max_grad_norm=self.max_grad_norm)
            self.noise_multiplier_ = float(opt_d.noise_multiplier)
            self.sample_rate_ = float(loader.sample_rate)
            fakes = min(self.batch_size, n)  # fake examples per D and G step: fixed, never data-dependent
            history: list[dict[str, float]] = []
            steps = 0
            for epoch in range(self.epochs):
                d_fake, g_loss = [], []
                for xb, yb in loader:
                    xb, yb = xb.to(device), yb.to(device)
                    # D: one DP-SGD step on [real batch; fakes], real -> 1, fake -> 0. The fake rows
                    # are clipped too, though they need no privacy: with exact fake gradients added
                    # to the clipped, noised real ones (tried on CIFAR-10), D's loss on fakes stayed
                    # near 0.02 from the third epoch on (it spotted every fake); clipped alike, it
                    # mostly ranged over 0.2-0.7.
                    z = torch.randn(fakes, self.latent_dim, device=device)
                    yf = torch.randint(num_classes, (fakes,), device=device)
                    with torch.no_grad():
                        xf = gen(z, yf)
                    target = torch.cat([torch.ones(len(xb), device=device), torch.zeros(fakes, device=device)])
                    opt_d.zero_grad(set_to_none=True)
                    # Contiguous input: Opacus 1.6's per-example conv gradients (unfold2d) are wrong
                    # for channels_last tensors.
                    logits = disc(torch.cat([xb.to(xf.dtype), xf]).contiguous(), torch.cat([yb, yf]))
                    F.binary_cross_entropy_with_logits(logits, target).backward()
                    opt_d.step()
                    steps += 1
                    # Only the fakes' loss is recorded: a loss on real examples is not private.
                    d_fake.append(F.binary_cross_entropy_with_logits(logits[len(xb):].detach(), target[len(xb):]).item())
                    if steps % self.d_steps:
                        continue
                    # G: non-saturating loss through D; no per-example gradients, no DP accounting.
                    # Mode seeking (Mao et al. 2019): pairs with one label and two latents are pushed
                    # apart in proportion to their latents' distance, against conditional collapse.
                    half = max(1, fakes // 2)
                    z = torch.randn(2 * half, self.latent_dim, device=device)
                    yf = torch.randint(num_classes, (half,), device=device).repeat(2)
                    with _public(disc):
                        xg = gen(z, yf)
                        loss_g = F.binary_cross_entropy_with_logits(disc(xg, yf), torch.ones(2 * half, device=device))
                        if self.mode_seeking:
                            ratio = ((xg[:half] - xg[half:]).abs().flatten(1).mean(1)
                                     / (z[:half] - z[half:]).abs().mean(1)).mean()
                            loss_g = loss_g + self.mode_seeking / (ratio + 1e-5)
                        opt_g.zero_grad(set_to_none=True)
                        loss_g.backward(inputs=list(gen.parameters()))  # G's gradients only
                    opt_g.step()
                    g_loss.append(loss_g.item())
                history.append({"epoch": epoch, "d_loss_fake": float(np.mean(d_fake)) if d_fake else math.nan,
                                "g_loss": float(np.mean(g_loss)) if g_loss else math.nan})
            self.epsilon_ = float(engine.get_epsilon(self.delta_))
        self.steps_ = steps  # DP-SGD steps of D, each accounted at sample_rate_
        self.history_ = history
        self.fit_seconds_ = time.perf_counter() - start
        self.generator_ = gen.cpu().eval()  # pickled into the cache, sampled on the CPU
        return self

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        """n examples of the labels in `conditions`; seed examples and strength are ignored."""
        labels = np.asarray(conditions.labels, dtype=np.int64)
        if len(labels) != n:
            raise BenchError(f"dp_gan: {n} examples asked for but {len(labels)} labels given")
        z = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        out = []
        with torch.no_grad():
            for i in range(0, n, 1024):  # chunks bound the memory of large requests
                out.append(self._decode(self.generator_(torch.from_numpy(z[i:i + 1024]),
                                                        torch.from_numpy(labels[i:i + 1024]))))
        x = np.concatenate(out) if out else np.empty((0, *self.shape_), dtype=self.dtype_)
        return Split(x, labels)

    def privacy(self) -> dict[str, Any]:
        """The fitted generator's privacy record (for strategy logs)."""
        return {"epsilon": self.epsilon_, "delta": self.delta_, "target_epsilon": self.target_epsilon,
                "max_grad_norm": self.max_grad_norm, "noise_multiplier": self.noise_multiplier_,
                "sample_rate": self.sample_rate_, "steps": self.steps_, "accountant": self.accountant,
                "preprocessing_private": self.preprocessing_private_}
