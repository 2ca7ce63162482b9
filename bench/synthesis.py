"""What every strategy that synthesises shares: its synthetic settings (the suite's `synthetic:` section,
with the strategy's own `mix_ratio` override), the suite's fitted generator, the pool of unused real
examples, and training on real + synthetic data with class-weighted mixing.

A baseline that synthesises subclasses `SynthesisStrategy` (a dataclass) and registers with
`synthesises=True` (and `uses_generator=True` when it samples the suite's generator):

    @STRATEGIES.register("my_synthesis", kind="baseline", synthesises=True, uses_generator=True)
    @dataclass
    class MySynthesis(SynthesisStrategy):
        def run(self, task: TaskView) -> StrategyResult:
            generator, log = self.fitted_generator(task)
            synthetic = generator.sample(self.total(task), Conditions(...), rng)
            return StrategyResult(self.train(task, synthetic, label="my_synthesis"), synthetic, {...})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from bench.api import DatasetInfo, Split, TaskView
from bench.config import MAX_SYNTHETIC_PER_CLASS, SyntheticSpec
from bench.errors import BenchError
from bench.generator import fitted_generator


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


def embedding_view(task: Any, split: Split) -> Split:
    """Text examples as the task model's own input embeddings (its frozen encoder's): the space in which
    SMOTE interpolates and DP-GAN's vector variant trains on text. float (N, D) in `x`.

    The embeddings come from the task model's optional hook (not part of the required contract):
        embed(x) -> np.ndarray | None   a split's inputs as the float (N, D) embeddings the model trains
                                        on, or None when it takes no embeddings (e.g. it fine-tunes its
                                        encoder on tokens, lora: true)
    A model without the hook takes no embeddings."""
    from bench.registry import MODELS

    hook = getattr(MODELS.build(task.model.name, task.model.params), "embed", None)
    x = hook(split.x) if hook is not None else None
    if x is None:
        raise BenchError(f"model {task.model.name!r} does not take embeddings (lora: true fine-tunes the encoder on "
                         "tokens): embedding-space strategies (smote, dp_gan) need the frozen encoder")
    return Split(x, np.asarray(split.y), dict(split.groups))


def embedded_examples(split: Split) -> Split:
    """Embedding rows (from `embedding_view`'s space) as text-split examples (bench.text: an object array
    whose elements are embeddings), so they mix with real texts in one split."""
    from bench.text import text_array

    return Split(text_array(list(np.asarray(split.x, dtype=np.float32))), np.asarray(split.y), dict(split.groups))


def pool_split(task: TaskView, which: str, size: int | None, seed: int) -> Split:
    """The real examples a strategy may draw seeds from or score: the unused real training examples
    (`unlabeled`: in a strategy's view their labels raise, bench.task.UnlabelledSplit) or the validation
    split, as a seeded subsample of at most `size`."""
    pool = task.pool if which == "unlabeled" else task.val
    if len(pool) == 0:
        raise BenchError(f"the {which} pool is empty (a budget of 'all' leaves no unused training examples): "
                         "use pool: validation")
    if size is not None and len(pool) > size:
        idx = np.sort(np.random.default_rng(seed).choice(len(pool), size, replace=False))
        pool = pool.subset(idx)
    return pool


@dataclass
class SynthesisStrategy:
    """Base of the strategies that add synthetic data (a dataclass: subclasses add their parameters)."""

    mix_ratio: Annotated[float, Field(ge=0, le=1)] | None = None  # share of synthetic examples among the training draws; None: the suite's
    # Synthetic examples per class; None: the suite's. Lets one suite trace the synthetic-budget frontier
    # (strategies with ids at 50, 100, 200 per class). Left out of the cell record while None, so that
    # results made before the field existed keep their hash.
    budget_per_class: Annotated[int, Field(gt=0, le=MAX_SYNTHETIC_PER_CLASS)] | None = field(
        default=None, metadata={"omit_if_none": True})

    def settings(self, task: TaskView) -> SyntheticSpec:
        """The suite's synthetic section (checked before any work starts by bench.compat)."""
        if task.synthetic is None:
            raise BenchError(f"strategy {type(self).__name__} synthesises data: the suite needs a `synthetic:` "
                             "section (generator, budget_per_class, mix_ratio)")
        return task.synthetic

    def mix(self, task: TaskView) -> float:
        return self.settings(task).mix_ratio if self.mix_ratio is None else self.mix_ratio

    def per_class(self, task: TaskView) -> int:
        """Synthetic examples per class: the strategy's own budget_per_class, else the suite's."""
        return self.settings(task).budget_per_class if self.budget_per_class is None else self.budget_per_class

    def total(self, task: TaskView) -> int:
        """The whole synthetic budget: per_class examples for every class."""
        return self.per_class(task) * task.num_classes

    def fitted_generator(self, task: TaskView, name: str | None = None, params: dict[str, Any] | None = None,
                         real: Split | None = None, info: DatasetInfo | None = None) -> tuple[Any, dict[str, Any]]:
        """The suite's generator (or `name` with `params`) fitted on the real budget (or on `real`, a view
        of it described by `info`), shared through the cache by every strategy of the same seed; returns
        it with its log record."""
        spec = self.settings(task).generator
        return fitted_generator(task, spec.name if name is None else name, spec.params if params is None else params,
                                real=real, info=info)

    def train(self, task: TaskView, synthetic: Split, label: str, **options: Any) -> Any:
        """The task model trained on real + synthetic examples with class-weighted mixing."""
        merged = concat(task.train, synthetic)
        return task.fit(merged, sample_weight=mix_weights(task.train.y, synthetic.y, self.mix(task)), label=label,
                        **options)
