"""`prior_synthetic`: generic synthetic data added once. The suite's fitted generator makes the whole
synthetic budget in one go, each example's label drawn from the class prior of the real budget and,
with `seeded`, varied from a seed example drawn uniformly from the pool at `strength` (the seed's own
class is not consulted, so a seed may be varied towards another class); the task model is then trained
once on real + synthetic data.

This was `random_synthetic` before that became the control of active synthesis (the same loop without
targeting). It stays as a separate baseline because it is what "just add generator samples" usually
means in practice, and `seeded: false` (plain class-conditional samples) needs no pool at all; it is
not a control for the targeting, since it also differs in labelling, rounds and model selection."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.api import Conditions, StrategyResult, TaskView
from bench.registry import STRATEGIES
from bench.seeding import Stream, stream_rng
from bench.synthesis import SynthesisStrategy, pool_split


@STRATEGIES.register("prior_synthetic", kind="baseline", synthesises=True, uses_generator=True,
                      modalities=("image", "tabular", "vector", "text"))
@dataclass
class PriorSynthetic(SynthesisStrategy):
    seeded: bool = True  # seed examples drawn at random from the pool; False: plain class-conditional samples
    strength: float = 0.5  # variation strength for the seeds (0 = copy, 1 = ignore)
    pool: str = "unlabeled"  # where seeds come from: "unlabeled" or "validation"
    pool_size: int | None = 5000  # the same pool subsample as active_synthesis

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 1:
            raise ValueError("strength must lie in [0, 1]")
        if self.pool not in ("unlabeled", "validation"):
            raise ValueError("pool must be unlabeled or validation")

    def run(self, task: TaskView) -> StrategyResult:
        generator, gen_log = self.fitted_generator(task)
        rng = stream_rng(task.seed, Stream.PRIOR_SAMPLES)
        n = self.total(task)
        prior = np.bincount(task.train.y, minlength=task.num_classes) / len(task.train)
        labels = rng.choice(task.num_classes, n, p=prior)
        seeds = None
        if self.seeded:
            pool = pool_split(task, self.pool, self.pool_size, task.seed)
            seeds = np.asarray(pool.x)[rng.choice(len(pool), n)]
        synthetic = generator.sample(n, Conditions(labels=labels, seeds=seeds, strength=self.strength), rng)
        clf = self.train(task, synthetic, label="prior_synthetic")
        return StrategyResult(clf, synthetic=synthetic, log={
            "real_examples": len(task.train), "synthetic_examples": n, "mix_ratio": self.mix(task),
            "best_epoch": clf.best_epoch, "history": clf.history, "generator": gen_log,
        })
