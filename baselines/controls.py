"""Controls: the active-synthesis loop (method.active.ActiveSynthesis) with one part swapped out, so
that each isolates one cause of the method's effect. Every control runs the same rounds, stopping
rule, retraining (warm start, KL term, round epochs), mixing, round selection on validation and
random numbers (bench.seeding) as the method, with the method's parameters (give them the suite's
YAML anchor), and differs only in what a round adds to the training data:

  loop_real_only   nothing: the same rounds of extra training and the same selection of the best round
                   on real data alone, the effect of the loop without any synthetic data. The method's
                   verdicts are taken against it too (reference rank 2).
  oracle_real      real pool examples with their true labels, seeds drawn uniformly from the pool: a
                   perfect generator. The positive control: where it is not detected as better than
                   real_only, the suite cannot see even real data.
  oracle_active    real pool examples with their true labels, drawn from U_tau: uncertainty sampling
                   with true labels, what targeting can give at best on this data.
  pseudo_label     the method's seeds themselves (strength 0: copies of pool examples from U_tau) with the
                   labels the model draws for them: does the generator add anything beyond the pool?
  permuted_labels  random_synthetic's generated examples with their labels permuted among themselves:
                   the negative control, which must not come out better.

oracle_real and oracle_active read the labels of the unused pool (`reads_pool_labels`); their results
say so (`strategy_log.pool_labels_read`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.api import Split, TaskView
from bench.registry import STRATEGIES
from bench.seeding import LoopPart
from bench.synthesis import empty_like

from ..method.active import ActiveSynthesis, Round

ALL = ("image", "tabular", "vector", "text")


class _Control(ActiveSynthesis):
    """A control fixes `guidance` (where its seeds come from) instead of taking it as a parameter."""

    fixed_guidance: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.guidance != self.fixed_guidance:
            where = "U_tau" if self.fixed_guidance else "the whole pool"
            raise ValueError(f"{type(self).__name__} draws its seeds from {where}: leave guidance out of its parameters")
        super().__post_init__()


def _control(name: str, **caps: Any):
    return STRATEGIES.register(name, kind="control", version=1, synthesises=True, modalities=ALL,
                               control_of="active_synthesis", **caps)


@_control("loop_real_only", reference=2)
@dataclass
class LoopRealOnly(_Control):
    samples_generator = False
    adds = "nothing (the loop's extra training and round selection on real data alone)"

    def supply(self, task: TaskView, generator: Any, rnd: Round) -> tuple[Split, dict[str, Any]]:
        return empty_like(task.train), {"kind": "none"}


@_control("oracle_real", reads_pool_labels=True, control_role="positive")
@dataclass
class OracleReal(_Control):
    guidance: bool = False
    fixed_guidance = False
    samples_generator = False
    reads_pool_labels = True
    adds = "real pool examples with their true labels, drawn uniformly (a perfect generator)"

    def supply(self, task: TaskView, generator: Any, rnd: Round) -> tuple[Split, dict[str, Any]]:
        return Split(np.asarray(rnd.pool.x)[rnd.chosen], np.asarray(rnd.pool.y)[rnd.chosen]), {"kind": "real examples"}


@_control("oracle_active", reads_pool_labels=True)
@dataclass
class OracleActive(OracleReal):
    guidance: bool = True
    fixed_guidance = True
    adds = "real pool examples from U_tau with their true labels (uncertainty sampling with an oracle)"


@_control("pseudo_label")
@dataclass
class PseudoLabel(_Control):
    samples_generator = False
    adds = "the seeds from U_tau themselves (strength 0) with the labels the model draws for them"

    def supply(self, task: TaskView, generator: Any, rnd: Round) -> tuple[Split, dict[str, Any]]:
        return Split(np.asarray(rnd.pool.x)[rnd.chosen], np.asarray(rnd.labels)), {"kind": "seed copies"}


@_control("permuted_labels", uses_generator=True, control_role="negative")
@dataclass
class PermutedLabels(_Control):
    guidance: bool = False
    fixed_guidance = False
    adds = "random_synthetic's generated examples with their labels permuted among themselves"

    def supply(self, task: TaskView, generator: Any, rnd: Round) -> tuple[Split, dict[str, Any]]:
        new, targeting = super().supply(task, generator, rnd)
        shuffled = rnd.draws[LoopPart.SHUFFLE].permutation(np.asarray(new.y))
        return Split(new.x, shuffled, dict(new.groups)), {**targeting, "labels": "permuted"}

