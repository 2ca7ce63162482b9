"""`random_synthetic`: the same fitted generator and the same synthetic budget as active synthesis,
without the targeting: target labels drawn from the class prior of the real budget and seed examples
drawn uniformly from the pool (or none). What it loses against `active_synthesis` is what targeting
the uncertain region is worth."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.generator import Conditions, fitted_generator
from bench.method.active import pool_split, require_synthetic
from bench.method.mixing import train_with_synthetic
from bench.registry import STRATEGIES
from bench.strategy import StrategyResult
from bench.task import Task


@STRATEGIES.register("random_synthetic", kind="baseline", synthetic=True)
@dataclass
class RandomSynthetic:
    seeded: bool = True  # seed examples drawn at random from the pool; False: plain class-conditional samples
    strength: float = 0.5  # variation strength for the seeds, as in active_synthesis
    pool: str = "unlabeled"  # where seeds come from: "unlabeled" or "validation"
    pool_size: int | None = 5000  # same pool subsample as active_synthesis
    mix_ratio: float | None = None  # None: the suite's synthetic.mix_ratio

    def run(self, task: Task) -> StrategyResult:
        syn = require_synthetic(task, "random_synthetic")
        mix = syn.mix_ratio if self.mix_ratio is None else self.mix_ratio
        generator, gen_log = fitted_generator(task, syn.generator.name, syn.generator.params)
        rng = np.random.default_rng([task.seed, 2])
        n = syn.budget_per_class * task.num_classes
        prior = np.bincount(task.train.y, minlength=task.num_classes) / len(task.train)
        labels = rng.choice(task.num_classes, n, p=prior)
        seeds = None
        if self.seeded:
            pool = pool_split(task, self.pool, self.pool_size, task.seed)
            seeds = np.asarray(pool.x)[rng.choice(len(pool), n)]
        synthetic = generator.sample(n, Conditions(labels=labels, seeds=seeds, strength=self.strength), rng)
        clf = train_with_synthetic(task, synthetic, mix, label="random_synthetic")
        return StrategyResult(clf, synthetic=synthetic, log={
            "real_examples": len(task.train), "synthetic_examples": n, "mix_ratio": mix,
            "best_epoch": clf.best_epoch, "history": clf.history, "generator": gen_log,
        })
