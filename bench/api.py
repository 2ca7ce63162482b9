"""The plug-in contracts: what a data set, task model, generator, strategy and metric must provide,
what each declares about itself when it registers (its typed capabilities), and the facts of a data
set that components receive explicitly (DatasetInfo).

A plug-in is still one file with one decorated class (or function):

    @STRATEGIES.register("my_baseline", kind="baseline")
    @dataclass
    class MyBaseline:
        def run(self, task: Task) -> StrategyResult: ...

The registry turns the decorator's keywords into the registry's capability record (an unknown or
badly typed keyword is an error at import time, naming the plug-in) and checks that the object has
the methods of its contract. `bench validate` and `bench run` then check, before any work starts,
that every data set x model x generator x strategy x metric combination of a suite is one the
components declare they support (bench.compat).

Every capability record has a `version`: bump it when a change alters what the component produces.
It enters the config hash of every cell that uses the component, so results of the old version are
recomputed instead of counting as up to date.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from bench.data import DatasetSplits, Split

if TYPE_CHECKING:  # annotations only: these modules import the registries, which import this one
    import torch
    from torch import nn

    from bench.generator import Conditions
    from bench.strategy import StrategyResult
    from bench.task import Task

# image: uint8 arrays (N, H, W, C); tabular: tables with a schema (bench.table: what each column is);
# vector: plain numeric feature vectors (N, D) without a schema; text: lists of strings.
Modality = Literal["image", "tabular", "vector", "text"]
MODALITIES: tuple[str, ...] = ("image", "tabular", "vector", "text")
# What a strategy or metric that declares no modalities is taken to support: the modalities of the
# contract's first release, written out so that a modality added to MODALITIES later never enrols a
# plug-in that did not ask for it. Built-in plug-ins always declare theirs.
UNDECLARED_MODALITIES: tuple[str, ...] = ("image", "tabular", "vector", "text")


@dataclass(frozen=True)
class DatasetInfo:
    """What a component may know of the data set it works on, passed explicitly to
    `TaskModel.build` and `Generator.fit` (never set on the component as an attribute)."""

    name: str
    modality: str
    classes: tuple[str, ...]
    schema: Any = None  # tables: a bench.table.TableSchema (what each column is); else None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def of(cls, data: DatasetSplits) -> "DatasetInfo":
        return cls(name=data.name, modality=data.modality, classes=tuple(data.classes), schema=data.schema)

    @classmethod
    def unnamed(cls, num_classes: int, modality: str = "image", schema: Any = None) -> "DatasetInfo":
        """For a component used outside a suite: classes named "class 0", "class 1", ..."""
        return cls(name="", modality=modality, classes=tuple(f"class {c}" for c in range(num_classes)), schema=schema)


# ---------------------------------------------------------------------------------------------
# Capabilities: what an entry declares when it registers. Frozen dataclasses, so a misspelt or
# unknown keyword in a decorator fails at import with the entry's name.


def _declared(caps: Any) -> None:
    """A strategy's or metric's modalities: UNDECLARED_MODALITIES where it named none."""
    if caps.modalities is None:
        object.__setattr__(caps, "modalities", UNDECLARED_MODALITIES)
    _modalities(caps.modalities, "modalities")


def _modalities(values: tuple[str, ...], what: str) -> None:
    bad = [m for m in values if m not in MODALITIES]
    if bad or not values:
        raise ValueError(f"{what} must be a non-empty tuple of {', '.join(MODALITIES)}; got {values!r}")


@dataclass(frozen=True)
class DatasetCaps:
    modality: str
    classes: int  # number of classes
    license: str = ""
    version: int = 1  # bump when the loader's output (rows, split, preprocessing) changes
    # Examples per class in the official splits, with the default parameters: lets `bench validate`
    # refuse a budget or test subset larger than the data before anything loads. None: unknown.
    train_per_class: tuple[int, ...] | None = None
    test_per_class: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _modalities((self.modality,), "modality")


@dataclass(frozen=True)
class ModelCaps:
    modalities: tuple[str, ...]
    version: int = 1

    def __post_init__(self) -> None:
        _modalities(self.modalities, "modalities")


@dataclass(frozen=True)
class GeneratorCaps:
    modalities: tuple[str, ...]
    version: int = 1  # also keys the cache of fitted generators
    needs_model_path: bool = False  # loads local weights from `model_path` (`bench run --sd-path`)
    datasets: tuple[str, ...] | None = None  # only these data sets (e.g. an oracle of one generated problem)

    def __post_init__(self) -> None:
        _modalities(self.modalities, "modalities")


@dataclass(frozen=True)
class StrategyCaps:
    kind: Literal["baseline", "method"]
    version: int = 1
    # Adds synthetic data: needs the suite's `synthetic:` section (budget_per_class, mix_ratio).
    synthesises: bool = False
    # Samples the suite's generator (synthetic.generator); false for strategies that make their own
    # data (SMOTE) or fit their own generator (dp_gan: `own_generator`).
    uses_generator: bool = False
    own_generator: str | None = None  # a registered generator the strategy fits with its own parameters
    # On text, works in the frozen encoder's embedding space (bench.synthesis.embedding_view): its own
    # generator then needs to make "vector" data, not text.
    text_as_vectors: bool = False
    modalities: tuple[str, ...] | None = None  # None: UNDECLARED_MODALITIES (built-ins always declare)
    # Verdicts compare the other strategies of a suite against its references, in this order (0 first:
    # the primary reference of the report's verdicts, forest plot, cost and of the wins table). None:
    # not a reference.
    reference: int | None = None
    # The control of another strategy: the same code and parameters, less what that strategy declares in
    # `targeting_params`; `bench validate` warns when a suite gives the two other parameters.
    control_of: str | None = None
    # Parameters that only this strategy's targeting reads (how generation is aimed): its control may
    # differ from it in these.
    targeting_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("baseline", "method"):
            raise ValueError(f"kind must be baseline or method, got {self.kind!r}")
        if self.uses_generator and not self.synthesises:
            raise ValueError("a strategy that uses the suite's generator synthesises (synthesises=True)")
        _declared(self)


@dataclass(frozen=True)
class MetricCaps:
    higher_is_better: bool
    modalities: tuple[str, ...] | None = None  # None: UNDECLARED_MODALITIES (built-ins always declare)
    version: int = 1
    # A secondary column of the report's summary table, in this order (0 first; the suite's primary
    # metric is always shown). None: only in the detailed tables.
    summary: int | None = None
    # What the metric reads besides the task's data, which decides whether `bench rescore` can compute
    # it from a finished cell's artifacts (bench.artifacts): "predictions" the stored test
    # probabilities (with the test labels and groups); "synthetic" the synthetic split, kept only
    # under --keep-synthetic; "model" the trained classifier itself (PGD), which no result keeps.
    needs: Literal["predictions", "synthetic", "model"] = "predictions"

    def __post_init__(self) -> None:
        _declared(self)
        if self.needs not in ("predictions", "synthetic", "model"):
            raise ValueError(f"needs must be predictions, synthetic or model, got {self.needs!r}")


@dataclass(frozen=True)
class SuiteCaps:
    """Suites register the path of their YAML file; they declare nothing else."""


# ---------------------------------------------------------------------------------------------
# Contracts: the methods each kind of entry must have (checked when it registers).


@runtime_checkable
class Dataset(Protocol):
    """Built with `data_dir` and its parameters; `load()` verifies checksums and returns the splits."""

    def load(self) -> DatasetSplits: ...


@runtime_checkable
class TaskModel(Protocol):
    """A dataclass of hyper-parameters with the hooks bench.training calls."""

    def build(self, train: Split, info: DatasetInfo) -> "nn.Module":
        """The network; may read statistics of `train` (normalisation) and `info` (classes, schema)."""

    def to_tensor(self, x: Any) -> "torch.Tensor":
        """A split's inputs in their stored tensor form."""

    def prepare_batch(self, xb: "torch.Tensor", train: bool, generator: "torch.Generator | None") -> "torch.Tensor":
        """Float network input; augmentation when train is true."""


@runtime_checkable
class Generator(Protocol):
    """A dataclass of parameters; fitted on the real budget, then sampled under conditions."""

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "Generator": ...

    def sample(self, n: int, conditions: "Conditions", rng: np.random.Generator) -> Split: ...


@runtime_checkable
class Strategy(Protocol):
    """A dataclass of parameters (asdict() is its record) with `run`. May also define
    `check_compatible(info_modality, generator_caps)` raising ValueError for a data set or generator
    it cannot work with, so that `bench validate` refuses the combination."""

    def run(self, task: "Task") -> "StrategyResult": ...


CONTRACTS: dict[str, tuple[str, ...]] = {
    # registry kind -> methods an entry must have (metrics are functions: callable)
    "dataset": ("load",),
    "model": ("build", "to_tensor", "prepare_batch"),
    "generator": ("fit", "sample"),
    "strategy": ("run",),
}

CAPABILITIES: dict[str, type] = {
    "dataset": DatasetCaps,
    "model": ModelCaps,
    "generator": GeneratorCaps,
    "strategy": StrategyCaps,
    "metric": MetricCaps,
    "suite": SuiteCaps,
}

