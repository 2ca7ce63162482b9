"""Predictive uncertainty of a trained classifier: MC dropout and deep ensembles, with the scores the
targeting uses.

From S stochastic predictions p_s(c|x) (S = T dropout passes, or K ensemble members):
  mean_probs  p(c|x) = mean_s p_s(c|x)
  entropy     H(x) = -sum_c p(c|x) log p(c|x)                         (nats, in [0, log C])
  variance    V(x) = sum_c Var_s[p_s(c|x)]                            (population variance over s,
              summed over the C classes: the trace of the covariance of the probability vector,
              in [0, 1 - 1/C]; summing rather than averaging keeps V independent of how many
              classes carry no mass)
  bald        I(x) = H(x) - mean_s H(p_s(.|x))                        (mutual information, nats)
The plan's score is V(x) + H(x) ("variance + entropy").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.training import Classifier, autocast

SCORES = ("variance+entropy", "entropy", "variance", "bald")


@dataclass
class Uncertainty:
    samples: np.ndarray  # (S, N, C) probabilities, float64

    @property
    def mean_probs(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    @property
    def entropy(self) -> np.ndarray:
        return _entropy(self.mean_probs)

    @property
    def variance(self) -> np.ndarray:
        return self.samples.var(axis=0).sum(axis=1)

    @property
    def bald(self) -> np.ndarray:
        return self.entropy - _entropy(self.samples).mean(axis=0)

    def score(self, kind: str = "variance+entropy") -> np.ndarray:
        if kind == "variance+entropy":
            return self.variance + self.entropy
        if kind in ("entropy", "variance", "bald"):
            return getattr(self, kind)
        raise ValueError(f"unknown uncertainty score {kind!r}; known: {', '.join(SCORES)}")


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=-1)


def _enable_dropout_only(module: nn.Module) -> None:
    """Eval mode everywhere (BatchNorm uses its running statistics) except the dropout layers."""
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()


def _has_active_dropout(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in module.modules())


def head_only_dropout(module: nn.Module) -> bool:
    """True when the network splits into `features` and `head` and all its dropout sits in the head,
    so the backbone's output is the same in every pass and can be computed once."""
    return (hasattr(module, "features") and hasattr(module, "head")
            and not _has_active_dropout(module.features) and _has_active_dropout(module.head))


@torch.no_grad()
def mc_dropout(clf: Classifier, x, passes: int = 50, fast: bool = True, seed: int = 0,
               chunk: int | None = None) -> Uncertainty:
    """T = `passes` stochastic forward passes with dropout on (and BatchNorm in eval mode).

    fast=True and a head-only-dropout network: the backbone runs once per example and the head T
    times on its features (all T passes batched together); otherwise T full forward passes."""
    module, spec, recipe = clf.module, clf.spec, clf.recipe
    device = next(module.parameters()).device
    X = spec.to_tensor(x)
    chunk = chunk or recipe.eval_batch_size
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    _enable_dropout_only(module)
    out = []
    try:
        for start in range(0, len(X), chunk):
            xb = spec.prepare_batch(X[start : start + chunk].to(device), train=False, generator=None)
            if recipe.channels_last and xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, recipe.bf16_autocast):
                if fast and head_only_dropout(module):
                    feats = module.features(xb)  # (n, D), deterministic
                    logits = module.head(feats.unsqueeze(0).expand(passes, *feats.shape).reshape(-1, feats.shape[-1]))
                    logits = logits.reshape(passes, len(xb), -1)
                else:
                    logits = torch.stack([module(xb) for _ in range(passes)])
            out.append(torch.softmax(logits.float(), dim=-1).double().cpu())
    finally:
        module.eval()
        torch.random.set_rng_state(gen_state)
    return Uncertainty(torch.cat(out, dim=1).numpy())


def ensemble(classifiers: list[Classifier], x) -> Uncertainty:
    """Deep ensemble: one deterministic prediction per independently trained member."""
    return Uncertainty(np.stack([c.predict_proba(x) for c in classifiers]))
