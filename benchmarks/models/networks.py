"""Task models. Each registered model is a dataclass of its hyper-parameters with the three hooks
that `bench.training` calls: build, to_tensor, prepare_batch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch import nn

from bench.api import DatasetInfo, Split
from bench.registry import MODELS


class Normalize(nn.Module):
    """Per-channel standardisation with statistics of the real training budget, stored as buffers
    so that the saved network is self-contained."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNNNet(nn.Module):
    """Three stages of two 3x3 conv-BN-ReLU layers with 2x2 max pooling, global average pooling, then
    the head: dropout and a linear layer. `features` and `head` are separate so that MC dropout can
    run the backbone once and the (stochastic) head many times."""

    def __init__(self, in_channels: int, num_classes: int, width: int, dropout: float,
                 mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            Normalize(mean, std),
            _conv_bn(in_channels, w), _conv_bn(w, w), nn.MaxPool2d(2),
            _conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w), _conv_bn(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """Per-image random translation by up to `pad` pixels (reflect padding) and horizontal flip.

    Written here because torchvision's transforms draw one set of random parameters per call, i.e.
    the same crop for a whole batch; per-image parameters for an in-memory batch need indexing."""
    n, c, h, w = x.shape
    dev = x.device
    flip = torch.rand(n, generator=generator).to(dev) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    if pad == 0:
        return x
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    return xp[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]


@MODELS.register("small_cnn", modalities=("image",))
@dataclass
class SmallCNN:
    """A small, fast CNN for 32x32 images (about 0.29 M parameters at width 32)."""

    width: Annotated[int, Field(ge=1, le=1024)] = 32  # channels of the first stage; later stages use 2x and 4x
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5  # before the linear head (MC dropout needs it)
    augment: bool = True  # random crop (pad 4) and horizontal flip during training
    crop_pad: Annotated[int, Field(ge=0, le=16)] = 4  # pixels

    def build(self, train: Split, info: DatasetInfo) -> nn.Module:
        x = np.asarray(train.x, dtype=np.float32) / 255.0
        mean = torch.tensor(x.mean(axis=(0, 1, 2)))
        std = torch.tensor(x.std(axis=(0, 1, 2))).clamp_min(1e-3)
        return SmallCNNNet(x.shape[-1], info.num_classes, self.width, self.dropout, mean, std)

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, C) -> uint8 (N, C, H, W); kept in uint8 (4x smaller) until a batch is used.
        Copies, so read-only (memory-mapped) arrays are fine."""
        return torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous()

    def prepare_batch(self, xb: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        xb = xb.float().div_(255.0)
        if train and self.augment:
            xb = random_crop_flip(xb, self.crop_pad, generator)
        return xb


class Standardize(nn.Module):
    """Feature-wise standardisation with statistics of the real training budget, stored as buffers."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TableEncoder(nn.Module):
    """A table row (numbers and category codes, bench.table) -> numbers standardised by the real
    budget's statistics, then each categorical column one-hot (its width = its number of categories).
    Inside the network, so the saved model is self-contained and synthetic rows need no separate
    preprocessing step."""

    def __init__(self, numeric: list[int], categorical: list[int], cardinalities: list[int],
                 mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("categorical", torch.tensor(categorical, dtype=torch.long))
        self.cardinalities = list(cardinalities)
        self.standardize = Standardize(mean, std)
        self.out_features = len(numeric) + sum(cardinalities)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.standardize(x[:, self.numeric])]
        for j, k in zip(self.categorical.tolist(), self.cardinalities):
            codes = x[:, j].round().long().clamp_(0, k - 1)
            parts.append(nn.functional.one_hot(codes, k).to(x.dtype))
        return torch.cat(parts, dim=1)


class MLPNet(nn.Module):
    """Encode (standardise; for tables also one-hot the categories), hidden ReLU layers, then the
    head: dropout and a linear layer (MC dropout runs the head alone)."""

    def __init__(self, in_features: int, num_classes: int, hidden: list[int], dropout: float,
                 encoder: nn.Module) -> None:
        super().__init__()
        layers: list[nn.Module] = [encoder]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@MODELS.register("mlp", modalities=("tabular", "vector"))
@dataclass
class MLP:
    """A multilayer perceptron with dropout before its head, for tables (bench.table: numbers
    standardised, categories one-hot) or plain numeric vectors (standardised)."""

    # units per hidden layer, each 1 to 65,536 ([]: a linear model on the encoded inputs)
    hidden: list[Annotated[int, Field(ge=1, le=2**16)]] = field(default_factory=lambda: [64, 64])
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5  # before the linear head (MC dropout needs it)

    def build(self, train: Split, info: DatasetInfo) -> nn.Module:
        """Reads info.schema (bench.table.TableSchema: what each column is); None: all columns numeric."""
        schema = info.schema
        x = np.asarray(train.x, dtype=np.float32)
        numeric = list(range(x.shape[1])) if schema is None else schema.numeric
        categorical = [] if schema is None else schema.categorical
        cards = [] if schema is None else [len(schema.columns[j].categories) for j in categorical]
        num = x[:, numeric]
        mean, std = torch.tensor(num.mean(axis=0)), torch.tensor(num.std(axis=0)).clamp_min(1e-6)
        encoder = TableEncoder(numeric, categorical, cards, mean, std)
        return MLPNet(encoder.out_features, info.num_classes, list(self.hidden), self.dropout, encoder)

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(x, dtype=np.float32))

    def prepare_batch(self, xb: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        return xb
