"""A two-dimensional toy problem with a known decision boundary, and a generator that samples its
true class-conditional distributions: the test bed on which active synthesis must beat random
synthesis.

Each class is a mixture of a large, easy component far from the boundary (weight 1 - rare) and a
small component near the origin (weight `rare`) on the *other* side of the vertical axis, where the
classes interleave. A handful of real examples rarely includes the small components, so a model
trained on them draws the boundary at x = 0 and misclassifies the rare regions. Random synthesis
meets them in proportion to their mass; synthesis aimed at uncertain examples finds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from bench.api import Conditions, DatasetInfo, DatasetSplits, Split
from bench.registry import DATASETS, GENERATORS

# Component means (x, y) and standard deviation per class: [easy, rare].
MEANS = np.array([[[-3.0, 0.0], [1.0, 2.5]],     # class 0: far left, rare pocket right of the axis
                  [[3.0, 0.0], [-1.0, -2.5]]])   # class 1: far right, rare pocket left of the axis
STDS = np.array([[1.0, 0.4], [1.0, 0.4]])


def sample_class(c: int, n: int, rare: float, rng: np.random.Generator) -> np.ndarray:
    comp = (rng.random(n) < rare).astype(int)
    return MEANS[c, comp] + STDS[c, comp][:, None] * rng.standard_normal((n, 2))


def class_density(x: np.ndarray, c: int, rare: float) -> np.ndarray:
    dens = np.zeros(len(x))
    for k, w in enumerate((1 - rare, rare)):
        d2 = ((x - MEANS[c, k]) ** 2).sum(axis=1) / STDS[c, k] ** 2
        dens += w * np.exp(-0.5 * d2) / (2 * np.pi * STDS[c, k] ** 2)
    return dens


def make_split(n_per_class: int, rare: float, rng: np.random.Generator) -> Split:
    x = np.concatenate([sample_class(c, n_per_class, rare, rng) for c in (0, 1)]).astype(np.float32)
    y = np.repeat(np.arange(2), n_per_class)
    return Split(x, y)


@DATASETS.register("toy_pockets", modality="vector", classes=2, license="generated in code",
                   train_per_class=(2000, 2000), test_per_class=(2000, 2000))
class ToyPockets:
    """Generated in code from a fixed seed; `data_dir` is accepted for a uniform interface and unused.
    `train_per_class` and `test_per_class` are the sizes of every class (bench.compat checks the suite's
    budgets against them instead of the declared 2,000); `rare` is the weight of the rare pockets."""

    def __init__(self, data_dir: str | None = None,
                 train_per_class: Annotated[int, Field(ge=1, le=1_000_000)] = 2000,
                 test_per_class: Annotated[int, Field(ge=1, le=1_000_000)] = 2000,
                 rare: Annotated[float, Field(ge=0, le=1)] = 0.1,
                 seed: Annotated[int, Field(ge=0, lt=2**32)] = 12345) -> None:
        self.train_per_class, self.test_per_class, self.rare, self.seed = train_per_class, test_per_class, rare, seed

    def load(self) -> DatasetSplits:
        rng = np.random.default_rng(self.seed)
        return DatasetSplits(name="toy_pockets", modality="vector", classes=["left", "right"],
                             train=make_split(self.train_per_class, self.rare, rng),
                             test=make_split(self.test_per_class, self.rare, rng))


@GENERATORS.register("toy_pockets_oracle", modalities=("vector",), datasets=("toy_pockets",))
@dataclass
class ToyPocketsOracle:
    """Samples the true class-conditional distribution of `toy_pockets`; nothing to fit.

    With seed examples it samples p(x | label) near the seed: of `candidates` draws from the class,
    one is kept with probability proportional to exp(-|x - seed|^2 / (2 h^2)), h = bandwidth / (1 -
    strength) (importance resampling of p(x | label) times a kernel around the seed); strength 1
    ignores the seed."""

    rare: Annotated[float, Field(ge=0, le=1)] = 0.1  # weight of the rare pockets, a probability
    candidates: Annotated[int, Field(ge=1, le=100_000)] = 64  # draws per seed example
    bandwidth: Annotated[float, Field(gt=0)] = 0.5  # kernel width around a seed (finite: every float parameter is)

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "ToyPocketsOracle":
        return self

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        labels = np.asarray(conditions.labels, dtype=np.int64)
        x = np.empty((n, 2), dtype=np.float32)
        for i, c in enumerate(labels):
            if conditions.seeds is None or conditions.strength >= 1:
                x[i] = sample_class(int(c), 1, self.rare, rng)[0]
                continue
            cand = sample_class(int(c), self.candidates, self.rare, rng)
            h = self.bandwidth / max(1e-6, 1 - conditions.strength)
            logw = -((cand - np.asarray(conditions.seeds[i])) ** 2).sum(axis=1) / (2 * h * h)
            w = np.exp(logw - logw.max())
            x[i] = cand[rng.choice(len(cand), p=w / w.sum())]
        return Split(x, labels)
