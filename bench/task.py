"""The low-data protocol: a Task is a data set cut down to a seeded, stratified real-data budget,
with a validation split carved from the remaining training examples, the official test set, and
the task model and recipe that every strategy trains.

For a seed s and a budget of n examples per class, each class's training indices are shuffled by
`numpy.random.default_rng(s)`; the first n form the budget, the next `val_per_class` the validation
split and the rest the unlabelled pool (the unused real training examples, which active methods may
score). Strategies of one comparison therefore see the very same real data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.data import DatasetSplits, Split
from bench.errors import BenchError
from bench.registry import MODELS


def stratified_indices(y: np.ndarray, counts: list[int], seed: int, what: str = "split") -> list[np.ndarray]:
    """For each requested count, that many indices of every class, disjoint across counts, drawn by a
    seeded shuffle of each class. Returns one sorted index array per count."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in counts]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        need = sum(counts)
        if need > len(idx):
            raise BenchError(f"{what} needs {need} examples of class {c} but the split has only {len(idx)}")
        start = 0
        for i, n in enumerate(counts):
            parts[i].append(idx[start : start + n])
            start += n
    return [np.sort(np.concatenate(p)) for p in parts]


def split_budget(y: np.ndarray, budget: int, val_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(budget, validation, pool) indices of the training split, stratified and seeded."""
    train_idx, val_idx = stratified_indices(y, [budget, val_per_class], seed, what=f"a budget of {budget} per class plus validation")
    used = np.zeros(len(y), dtype=bool)
    used[train_idx] = used[val_idx] = True
    return train_idx, val_idx, np.flatnonzero(~used)


def build_model_spec(spec: NamedSpec) -> Any:
    cls = MODELS.get(spec.name)
    try:
        return cls(**spec.params)
    except TypeError as exc:
        raise BenchError(f"model {spec.name!r}: bad parameters {spec.params}: {exc}") from None


@dataclass
class Task:
    """Everything a strategy may use; the test split is for evaluation only."""

    data: DatasetSplits
    budget: int  # real training examples per class
    seed: int
    train: Split
    val: Split
    test: Split
    pool: Split  # unused real training examples, labels hidden by convention (active methods score them)
    model: NamedSpec
    recipe: TrainRecipe
    synthetic: SyntheticSpec | None = None  # generator, synthetic budget and mixing ratio, if the suite has them
    device: str = "cpu"
    quiet: bool = True

    @classmethod
    def build(
        cls,
        data: DatasetSplits,
        budget: int,
        val_per_class: int,
        seed: int,
        model: NamedSpec,
        recipe: TrainRecipe,
        test_per_class: int | None = None,
        synthetic: SyntheticSpec | None = None,
        device: str = "cpu",
        quiet: bool = True,
    ) -> "Task":
        tr, va, pool = split_budget(data.train.y, budget, val_per_class, seed)
        test = data.test
        if test_per_class is not None:
            # The test subset depends on nothing but its size, so every seed is scored on the same images.
            (te,) = stratified_indices(test.y, [test_per_class], seed=0, what="the test subset")
            test = test.subset(te)
        return cls(data=data, budget=budget, seed=seed, train=data.train.subset(tr), val=data.train.subset(va),
                   test=test, pool=data.train.subset(pool), model=model, recipe=recipe, synthetic=synthetic,
                   device=device, quiet=quiet)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def fit(self, train: Split | None = None, *, seed: int | None = None, recipe: TrainRecipe | None = None,
            label: str = "train", **options: Any):
        """Train the task model on `train` (default: the real budget) with the task's recipe (or
        `recipe`); `options` go to bench.training.fit_classifier (sample_weight, teacher, kl_weight, init)."""
        from bench.training import fit_classifier

        spec = build_model_spec(self.model)
        if self.data.schema is not None and hasattr(spec, "schema"):
            spec.schema = self.data.schema  # table models encode columns by kind
        return fit_classifier(
            spec, recipe or self.recipe, train if train is not None else self.train,
            self.val, self.num_classes, device=self.device, seed=self.seed if seed is None else seed,
            quiet=self.quiet, label=label, **options,
        )
