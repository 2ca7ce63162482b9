"""Merging real and synthetic data for training, shared by every strategy that synthesises."""
from __future__ import annotations

import numpy as np

from bench.data import Split


def concat(a: Split, b: Split) -> Split:
    groups = {k: np.concatenate([a.groups[k], b.groups[k]]) for k in a.groups if k in b.groups}
    return Split(np.concatenate([np.asarray(a.x), np.asarray(b.x)]), np.concatenate([a.y, b.y]), groups)


def empty_like(split: Split) -> Split:
    return Split(np.asarray(split.x)[:0], np.asarray(split.y)[:0])


def mix_weights(real_y: np.ndarray, syn_y: np.ndarray, mix_ratio: float) -> np.ndarray:
    """Sampling weights for [real; synthetic]: the synthetic examples together get probability
    `mix_ratio`, the real ones 1 - mix_ratio, and within each part every class present gets an equal
    share (class-weighted sampling), split equally among its examples. Without synthetic examples the
    real part gets everything."""
    if len(syn_y) == 0:
        mix_ratio = 0.0
    w = np.concatenate([_balanced(np.asarray(real_y), 1 - mix_ratio), _balanced(np.asarray(syn_y), mix_ratio)])
    return w / w.sum()


def _balanced(y: np.ndarray, total: float) -> np.ndarray:
    w = np.zeros(len(y))
    classes, counts = np.unique(y, return_counts=True)
    for c, n in zip(classes, counts):
        w[y == c] = total / (len(classes) * n)
    return w


def train_with_synthetic(task, synthetic: Split, mix_ratio: float, label: str, **options):
    """Train the task model on real + synthetic examples with class-weighted sampling."""
    merged = concat(task.train, synthetic)
    weights = mix_weights(task.train.y, synthetic.y, mix_ratio)
    return task.fit(merged, sample_weight=weights, label=label, **options)
