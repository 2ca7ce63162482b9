"""Adversarial robustness of the trained classifier: accuracy under an L-inf PGD attack (Madry et al.
2018; torchattacks' PGD, default 10 steps of 2/255 within eps = 8/255 of the image, random start),
and the clean accuracy on the same images.

Both metrics score a fixed subset of the test split: `samples` examples drawn without replacement by
`numpy.random.default_rng(subset_seed)`. The subset depends on nothing but the test split, `samples`
and `subset_seed`, so every strategy and seed is attacked on the same images (give both metrics the
same `samples`). Robust accuracy counts an example as robust when the clean image *and* the attacked
one are classified correctly (RobustBench's convention), so it never exceeds the clean accuracy, and
with eps = 0 the two are equal.

Pixels are in [0, 1] (images / 255), the unit of eps and alpha. The attack runs in float32 without
autocast, whatever the training recipe (bfloat16 gradients would be too coarse for 2/255 steps), and
so does the clean accuracy here: it can differ slightly from `accuracy`, which uses the recipe's
autocast, and it covers only the subset.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.api import EvalContext
from bench.errors import BenchError
from bench.registry import METRICS

IMAGE = ("image",)


class UnitIntervalModel(nn.Module):
    """The classifier's network as torchattacks expects it: float images in [0, 1], (N, C, H, W), to
    float32 logits. The task model's network normalises its input itself."""

    def __init__(self, module: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.module = module
        self.channels_last = channels_last  # the memory format the network was trained in (speed only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x).float()


def attack_subset(n: int, samples: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of min(samples, n) of n test examples, drawn without replacement by `seed`."""
    if samples < 1:
        raise BenchError(f"samples must be positive, got {samples}")
    return np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))


def _batches(ctx: EvalContext, samples: int, subset_seed: int, batch_size: int):
    """(images in [0, 1] NCHW float32, labels) on the classifier's device, batch by batch."""
    clf = ctx.classifier
    idx = attack_subset(len(ctx.y_true), samples, subset_seed)
    x = clf.spec.to_tensor(np.asarray(ctx.task.test.x)[idx])
    y = torch.as_tensor(np.asarray(ctx.y_true)[idx], dtype=torch.long)
    for start in range(0, len(idx), batch_size):
        xb = clf.spec.prepare_batch(x[start : start + batch_size].to(clf.device), train=False, generator=None).float()
        if xb.dim() != 4 or float(xb.min()) < 0 or float(xb.max()) > 1:
            raise BenchError("PGD needs image batches (N, C, H, W) with pixels in [0, 1] from the task model's "
                             f"prepare_batch; got shape {tuple(xb.shape)}, range [{float(xb.min()):.3g}, "
                             f"{float(xb.max()):.3g}]")
        yield xb, y[start : start + batch_size].to(clf.device)


def _applies(ctx: EvalContext) -> bool:
    """Only torch classifiers (bench.training.Classifier) can be attacked."""
    return isinstance(getattr(ctx.classifier, "module", None), nn.Module) and len(ctx.y_true) > 0


def _wrapped(ctx: EvalContext) -> UnitIntervalModel:
    recipe = getattr(ctx.classifier, "recipe", None)
    model = UnitIntervalModel(ctx.classifier.module, channels_last=bool(getattr(recipe, "channels_last", False)))
    return model.eval()  # BatchNorm statistics frozen, dropout off


@METRICS.register("pgd_accuracy", range=(0, 1), higher_is_better=True, modalities=IMAGE, needs="model")
def pgd_accuracy(ctx: EvalContext, samples: int = 500, eps: float = 8 / 255, alpha: float = 2 / 255,
                 steps: int = 10, random_start: bool = True, subset_seed: int = 0, attack_seed: int = 0,
                 batch_size: int = 250) -> float | None:
    """Fraction of the attack subset classified correctly both clean and under L-inf PGD.

    eps: radius of the L-inf ball (pixels in [0, 1]); alpha: step size; steps: gradient steps;
    random_start: start from a uniform draw in the ball, drawn from `attack_seed` (the global torch
    generators are left untouched). None for a classifier without a torch network.
    """
    if not _applies(ctx):
        return None
    try:
        import torchattacks  # optional dependency (the `vision` extra); imported here, not by `import metrics`
    except ImportError:
        raise BenchError("pgd_accuracy needs torchattacks: pip install -e '.[vision]'") from None
    was_training = ctx.classifier.module.training
    model = _wrapped(ctx)
    device = next(model.parameters()).device
    robust, total = 0, 0
    try:
        attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(attack_seed)
            for xb, yb in _batches(ctx, samples, subset_seed, batch_size):
                with torch.no_grad():
                    clean_ok = model(xb).argmax(1) == yb
                adv = attack(xb, yb)
                with torch.no_grad():
                    adv_ok = model(adv).argmax(1) == yb
                robust += int((clean_ok & adv_ok).sum())
                total += len(yb)
    finally:
        model.module.train(was_training)  # the network's mode as it was before the attack
    return robust / total


@METRICS.register("pgd_clean_accuracy", range=(0, 1), higher_is_better=True, modalities=IMAGE, needs="model")
def pgd_clean_accuracy(ctx: EvalContext, samples: int = 500, subset_seed: int = 0, batch_size: int = 250) -> float | None:
    """Accuracy on the clean images of pgd_accuracy's subset (float32, no autocast): the reference
    that the robust accuracy is read against."""
    if not _applies(ctx):
        return None
    was_training = ctx.classifier.module.training
    model = _wrapped(ctx)
    correct, total = 0, 0
    try:
        with torch.no_grad():
            for xb, yb in _batches(ctx, samples, subset_seed, batch_size):
                correct += int((model(xb).argmax(1) == yb).sum())
                total += len(yb)
    finally:
        model.module.train(was_training)
    return correct / total
