"""Generic supervised training of a task model: tensors held in memory, no DataLoader workers,
optional class-weighted sampling, model selection on the validation split (`selection_key`: validation
accuracy by default, never from the first epochs), optional channels_last and bfloat16 autocast.

A task model (registered in `bench.registry.MODELS`) supplies what is modality-specific:
  build(train: Split, info: DatasetInfo) -> nn.Module  the network (may read statistics of `train`, and
                                                    the classes and table schema in `info`)
  to_tensor(x) -> Tensor                            the stored form of a split's inputs
  prepare_batch(xb, train, generator) -> Tensor     float network input; augmentation when train=True
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.api import DatasetInfo, Split
from bench.config import TrainRecipe
from bench.progress import current


def make_optimizer(recipe: TrainRecipe, params) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)


def make_scheduler(recipe: TrainRecipe, opt: torch.optim.Optimizer,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The recipe's per-step learning-rate schedule over `epochs` x `steps_per_epoch` optimizer steps
    (TrainRecipe.lr_schedule says which); None for a constant learning rate."""
    if recipe.lr_schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.epochs * max(steps_per_epoch, 1), pct_start=recipe.warmup,
        anneal_strategy="cos" if recipe.lr_schedule == "cosine" else "linear", cycle_momentum=False,
        div_factor=25.0, final_div_factor=1e4)  # torch's defaults: from lr/25 up to lr, down to lr/25e4


def selection_key(metric: str, val_accuracy: float, val_loss: float) -> tuple[float, ...]:
    """How model selection ranks a candidate (an epoch, or a round of the active loop): larger is better.
    "accuracy": validation accuracy, ties broken by the lower validation loss; "loss": the lower loss.

    Accuracy by default because the lowest validation loss can belong to a barely trained network
    that predicts (nearly) one class: unsure predictions are cheap in cross-entropy, and on a small
    validation split such a network can score a lower loss than every later, useful epoch."""
    if metric == "accuracy":
        return (val_accuracy, -val_loss)
    if metric == "loss":
        return (-val_loss,)
    raise ValueError(f"unknown selection metric {metric!r}; use accuracy or loss")


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train_epoch(module: nn.Module, opt: torch.optim.Optimizer, spec: Any, X: torch.Tensor, Y: torch.Tensor,
                order: torch.Tensor, batch_size: int, generator: torch.Generator, recipe: TrainRecipe,
                teacher: torch.Tensor | None = None, kl_weight: float = 0.0,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> float:
    """One pass over `order` (indices into X, Y); returns the mean training loss.

    The loss is cross-entropy with the recipe's label smoothing. With `teacher` (N, C probabilities;
    NaN rows have none) and kl_weight > 0 it adds kl_weight * KL(teacher || model) over the batch rows
    that have a teacher distribution. `scheduler` (make_scheduler) steps after every optimizer step."""
    module.train()
    device = Y.device
    total, n = torch.zeros((), device=device), 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        xb = spec.prepare_batch(X[idx], train=True, generator=generator)
        if recipe.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, recipe.bf16_autocast):
            logits = module(xb)
            loss = F.cross_entropy(logits, Y[idx], label_smoothing=recipe.label_smoothing)
        if teacher is not None and kl_weight > 0:
            t = teacher[idx]
            has = ~torch.isnan(t[:, 0])
            if bool(has.any()):
                log_p = F.log_softmax(logits[has].float(), dim=1)
                loss = loss + kl_weight * F.kl_div(log_p, t[has], reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach() * len(idx)
        n += len(idx)
    return float(total) / max(n, 1)


@torch.no_grad()
def predict_logits(module: nn.Module, spec: Any, X: torch.Tensor, batch_size: int, recipe: TrainRecipe) -> torch.Tensor:
    module.eval()
    device = next(module.parameters()).device
    out = []
    for start in range(0, len(X), batch_size):
        xb = spec.prepare_batch(X[start : start + batch_size].to(device), train=False, generator=None)
        if recipe.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, recipe.bf16_autocast):
            out.append(module(xb).float())
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class Classifier:
    """A trained task model: the network plus what is needed to feed it raw split inputs."""

    module: nn.Module
    spec: Any
    recipe: TrainRecipe
    device: torch.device
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None

    def logits(self, x: Any) -> torch.Tensor:
        return predict_logits(self.module, self.spec, self.spec.to_tensor(x), self.recipe.eval_batch_size, self.recipe)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Softmax probabilities, float64 (N, num_classes)."""
        return torch.softmax(self.logits(x), dim=1).double().cpu().numpy()


def fit_classifier(spec: Any, recipe: TrainRecipe, train: Split, val: Split | None, info: DatasetInfo,
                   device: str | torch.device = "cpu", seed: int = 0, sample_weight: np.ndarray | None = None,
                   teacher: np.ndarray | None = None, kl_weight: float = 0.0, init: nn.Module | None = None,
                   quiet: bool = True, label: str = "train") -> Classifier:
    """Train a network of `spec` on `train`: a fresh one, or a copy of `init` (warm start).

    sample_weight: each epoch draws len(train) examples with replacement in proportion to the weights
      (class-weighted sampling of real and synthetic data).
    teacher, kl_weight: per-example target distributions for the KL term of `train_epoch`.
    Model selection (recipe.select_on_val) keeps the weights of the best epoch on the validation split by
    recipe.select_metric (`selection_key`: by default the highest validation accuracy, ties broken by the
    lower loss), among the epochs from select_from x epochs on; early_stopping_patience counts the
    epochs since that criterion last improved. With swa the averaged weights are returned instead.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # batch order and augmentation; CPU generator on every device
    module = (copy.deepcopy(init) if init is not None else spec.build(train, info)).to(device)
    if recipe.channels_last:
        module = module.to(memory_format=torch.channels_last)
    opt = make_optimizer(recipe, module.parameters())
    X = spec.to_tensor(train.x).to(device)
    Y = torch.as_tensor(np.asarray(train.y), dtype=torch.long, device=device)
    scheduler = make_scheduler(recipe, opt, steps_per_epoch=math.ceil(len(Y) / recipe.batch_size))
    Xv = spec.to_tensor(val.x).to(device) if val is not None and len(val) else None
    Yv = torch.as_tensor(np.asarray(val.y), dtype=torch.long, device=device) if Xv is not None else None
    weights = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.double)
    T = None if teacher is None else torch.as_tensor(teacher, dtype=torch.float32, device=device)
    swa_model, swa_from = None, recipe.epochs
    if recipe.swa:
        swa_model = torch.optim.swa_utils.AveragedModel(module)
        swa_from = int(recipe.swa_start * recipe.epochs)
        swa_sched = torch.optim.swa_utils.SWALR(opt, swa_lr=recipe.swa_lr or recipe.lr, anneal_epochs=1)
    clf = Classifier(module, spec, recipe, device)
    # Model selection (TrainRecipe.select_metric): epochs before `select_first` are never candidates.
    select_first = int(recipe.select_from * recipe.epochs)
    best_key, best_state, stale = None, None, 0
    with current().task(f"  {label}", total=recipe.epochs, transient=True) as bar:
        for epoch in range(recipe.epochs):
            if weights is None:
                order = torch.randperm(len(Y), generator=gen)
            else:
                order = torch.multinomial(weights, len(Y), replacement=True, generator=gen)
            record = {"epoch": epoch, "train_loss": train_epoch(module, opt, spec, X, Y, order.to(device),
                                                                recipe.batch_size, gen, recipe, T, kl_weight,
                                                                scheduler)}
            if swa_model is not None and epoch >= swa_from:
                swa_model.update_parameters(module)
                swa_sched.step()
            if Xv is not None:
                logits = predict_logits(module, spec, Xv, recipe.eval_batch_size, recipe)
                record["val_loss"] = float(F.cross_entropy(logits, Yv))
                record["val_accuracy"] = float((logits.argmax(1) == Yv).double().mean())
                key = selection_key(recipe.select_metric, record["val_accuracy"], record["val_loss"])
                if epoch < select_first:
                    pass  # too early to be returned (a barely trained network), and early stopping waits
                elif best_key is None or key > best_key:
                    best_key, stale = key, 0
                    if recipe.select_on_val and swa_model is None:
                        clf.best_epoch, best_state = epoch, copy.deepcopy(module.state_dict())
                else:
                    stale += 1
            clf.history.append(record)
            status = f"loss {record['train_loss']:.3f}" + (f" val acc {record['val_accuracy']:.3f}" if Xv is not None else "")
            bar.advance(status=status)
            if recipe.early_stopping_patience is not None and stale >= recipe.early_stopping_patience:
                break
    if swa_model is not None and swa_model.n_averaged.item() > 0:
        _update_bn(swa_model, spec, X, recipe)
        clf.module = module = swa_model.module
    elif best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return clf


def _update_bn(swa_model: nn.Module, spec: Any, X: torch.Tensor, recipe: TrainRecipe) -> None:
    """Recompute BatchNorm statistics for the averaged weights (torch.optim.swa_utils.update_bn)."""
    batches = (spec.prepare_batch(X[i : i + recipe.batch_size], train=False, generator=None)
               for i in range(0, len(X), recipe.batch_size))
    if recipe.channels_last and X.dim() == 4:
        batches = (b.contiguous(memory_format=torch.channels_last) for b in batches)
    torch.optim.swa_utils.update_bn(batches, swa_model)
