"""The low-data protocol: a Task is a data set cut down to a seeded, stratified real-data budget,
with a validation split carved from the remaining training examples, the official test set, and
the task model and recipe that every strategy trains.

For a seed s, each class's training indices are shuffled by `numpy.random.default_rng(s)`. A budget
takes one of three forms (bench.config.check_budget):
  n (an int)  n examples of every class (class-balanced): the first n of each class form the budget,
              the next `val_per_class` the validation split, the rest the unlabelled pool (the unused
              real training examples, which active methods may score).
  "all"       the first `val_per_class` of each class form the validation split, every other training
              example the budget (the data set's natural class balance); the pool is empty.
  "P%"        the validation split as for "all", then P% of each class's remaining examples (rounded)
              the budget: stratified, so the budget keeps the natural class balance; the rest is the pool.
Strategies of one comparison therefore see the very same real data.

A strategy never receives the Task itself but its `for_strategy` view (StrategyView, what
bench.api.TaskView states): no test split, the data set's facts instead of its loaded splits, and the
pool without its labels unless the strategy registered with `reads_pool_labels=True` (an oracle).
Reading what the view withholds raises BenchError. The evaluator (bench.cells) keeps the Task.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.api import DatasetInfo, DatasetSplits, Split, StrategyCaps
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe, budget_share
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


def split_budget(y: np.ndarray, budget: int | str, val_per_class: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(budget, validation, pool) indices of the training split, stratified and seeded; `budget` is n per
    class, "all" or "P%" (see the module docstring)."""
    share = budget_share(budget)
    if share is None:
        train_idx, val_idx = stratified_indices(y, [budget, val_per_class], seed,
                                                what=f"a budget of {budget} per class plus validation")
    else:
        train_idx, val_idx = _share_indices(y, share, val_per_class, seed, budget)
    used = np.zeros(len(y), dtype=bool)
    used[train_idx] = used[val_idx] = True
    return train_idx, val_idx, np.flatnonzero(~used)


def _share_indices(y: np.ndarray, share: float, val_per_class: int, seed: int, budget: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Validation first (val_per_class of every class), then `share` of each class's remaining examples."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        rest = len(idx) - val_per_class
        k = rest if share == 1 else int(np.floor(share * rest + 0.5))  # round half up, per class
        if k < 1:
            raise BenchError(f"a budget of {budget} leaves class {c} no training examples ({len(idx)} in the "
                             f"split, {val_per_class} of them for validation)")
        val.append(idx[:val_per_class])
        train.append(idx[val_per_class : val_per_class + k])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


TEST_HIDDEN = "strategies may not read the test split: only the evaluator sees it"
SPLITS_HIDDEN = ("strategies may not read the loaded data set's splits (task.data.train, task.data.test): "
                 "use task.train, task.val and task.pool")
POOL_LABELS_HIDDEN = ("strategies may not read the pool's labels (task.pool.y): a strategy that needs them is an "
                      "oracle and registers with reads_pool_labels=True")


class UnlabelledSplit(Split):
    """The pool as a strategy sees it: inputs, sensitive attributes, length and subsets, and no labels at
    all (it holds none): reading `y` raises BenchError, so do `concat` and anything else that reads it."""

    def __init__(self, x: Any, n: int, groups: dict[str, np.ndarray] | None = None) -> None:
        self.x, self.groups, self._n = x, dict(groups or {}), n

    @classmethod
    def of(cls, split: Split) -> "UnlabelledSplit":
        return cls(split.x, len(split), split.groups)

    @property
    def y(self) -> np.ndarray:
        raise BenchError(POOL_LABELS_HIDDEN)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"UnlabelledSplit({self._n} examples, labels hidden)"

    def subset(self, idx: np.ndarray) -> "UnlabelledSplit":
        n = len(np.arange(self._n)[idx])  # idx may be indices or a boolean mask
        return UnlabelledSplit(self.x[idx], n, {k: v[idx] for k, v in self.groups.items()})


class DatasetFacts(DatasetInfo):
    """The data set as a strategy sees it (TaskView.data): name, modality, classes, schema and
    num_classes, never the loaded splits: reading `train` or `test` raises BenchError."""

    @property
    def train(self) -> Split:
        raise BenchError(SPLITS_HIDDEN)

    @property
    def test(self) -> Split:
        raise BenchError(TEST_HIDDEN)


@dataclass(frozen=True)
class StrategyView:
    """What a strategy may use of its task (bench.api.TaskView), built by Task.for_strategy: the Task's
    fields less the test split, with the data set's facts for `data` and the pool's labels only for a
    strategy that declares reads_pool_labels. Reading `test` raises BenchError."""

    data: DatasetFacts
    budget: int | str  # real training examples per class, or "all" / "P%" of the training split
    seed: int
    train: Split
    val: Split
    pool: Split  # unused real training examples: an UnlabelledSplit unless the strategy reads pool labels
    model: NamedSpec
    recipe: TrainRecipe
    synthetic: SyntheticSpec | None = None
    device: str = "cpu"
    quiet: bool = True

    @property
    def test(self) -> Split:
        raise BenchError(TEST_HIDDEN)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def info(self) -> DatasetInfo:
        """The data set's facts that models and generators receive (classes, modality, table schema)."""
        return DatasetInfo(self.data.name, self.data.modality, self.data.classes, self.data.schema)

    def fit(self, train: Split | None = None, *, seed: int | None = None, recipe: TrainRecipe | None = None,
            label: str = "train", **options: Any):
        """As Task.fit."""
        return _fit(self, train, seed, recipe, label, options)


@dataclass
class Task:
    """The whole task, as the evaluator holds it: the loaded data set and the test split included.
    Strategies receive `for_strategy`'s view (bench.api.TaskView) instead; metrics get the Task."""

    data: DatasetSplits
    budget: int | str  # real training examples per class, or "all" / "P%" of the training split
    seed: int
    train: Split
    val: Split
    test: Split
    pool: Split  # unused real training examples (active methods score them; strategies see no labels)
    model: NamedSpec
    recipe: TrainRecipe
    synthetic: SyntheticSpec | None = None  # generator, synthetic budget and mixing ratio, if the suite has them
    device: str = "cpu"
    quiet: bool = True
    # sha256 of the data set's name and the training-split indices of the budget and the validation
    # split: equal in two results exactly when they trained on the same real examples (pairing check).
    real_fingerprint: str = ""

    @classmethod
    def build(
        cls,
        data: DatasetSplits,
        budget: int | str,
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
        digest = hashlib.sha256(data.name.encode())
        for part in (tr, va):
            digest.update(np.asarray(part, dtype=np.int64).tobytes())
            digest.update(b"|")
        return cls(data=data, budget=budget, seed=seed, train=data.train.subset(tr), val=data.train.subset(va),
                   test=test, pool=data.train.subset(pool), model=model, recipe=recipe, synthetic=synthetic,
                   device=device, quiet=quiet, real_fingerprint=digest.hexdigest())

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def info(self) -> DatasetInfo:
        """The data set's facts that models and generators receive (classes, modality, table schema)."""
        return DatasetInfo.of(self.data)

    def for_strategy(self, caps: StrategyCaps) -> StrategyView:
        """What the strategy registered with `caps` may use: no test split, the data set's facts only, and
        the pool's labels only where it declares reads_pool_labels."""
        pool = self.pool if caps.reads_pool_labels else UnlabelledSplit.of(self.pool)
        return StrategyView(data=DatasetFacts.of(self.data), budget=self.budget, seed=self.seed, train=self.train,
                            val=self.val, pool=pool, model=self.model, recipe=self.recipe, synthetic=self.synthetic,
                            device=self.device, quiet=self.quiet)

    def fit(self, train: Split | None = None, *, seed: int | None = None, recipe: TrainRecipe | None = None,
            label: str = "train", **options: Any):
        """Train the task model on `train` (default: the real budget) with the task's recipe (or
        `recipe`); `options` go to bench.training.fit_classifier (sample_weight, teacher, kl_weight, init)."""
        return _fit(self, train, seed, recipe, label, options)


def _fit(task: Task | StrategyView, train: Split | None, seed: int | None, recipe: TrainRecipe | None, label: str,
         options: dict[str, Any]):
    """Task.fit and StrategyView.fit: the task model selected on the task's validation split."""
    from bench.training import fit_classifier

    spec = MODELS.build(task.model.name, task.model.params)
    return fit_classifier(
        spec, recipe or task.recipe, train if train is not None else task.train,
        task.val, task.info, device=task.device, seed=task.seed if seed is None else seed,
        quiet=task.quiet, label=label, **options,
    )
