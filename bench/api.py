"""The plug-in contract: every type a plug-in sees, each stated once here. What a data set, task model,
generator, strategy and metric must provide (the Protocols, from which the registry's contract checks
are derived), what each declares about itself when it registers (its typed capabilities), and what
they exchange: the data containers (Split, DatasetSplits), the facts of a data set that components
receive explicitly (DatasetInfo), the conditions a generator is sampled with (Conditions), the part of
a task a strategy may use (TaskView), what a strategy returns (StrategyResult, its log's keys in
StrategyLog) and what a metric receives (EvalContext).

A plug-in is still one file with one decorated class (or function):

    @STRATEGIES.register("my_baseline", kind="baseline")
    @dataclass
    class MyBaseline:
        def run(self, task: TaskView) -> StrategyResult: ...

The contract of a strategy (a baseline or a method): a class registered in `bench.registry.STRATEGIES`,
built by `STRATEGIES.build` from the keyword parameters of its suite entry (a dataclass, so `asdict()`
is its parameter record), with one method, `run(task) -> StrategyResult`. It trains on the task's real
budget (and whatever it synthesises) and returns the trained classifier, the synthetic examples it
added, and its own log (rounds, sizes, privacy spent, ...; the keys the report reads: StrategyLog).
Sub-seeds of the task's seed come from bench.seeding.

The registry turns the decorator's keywords into the registry's capability record (an unknown or
badly typed keyword is an error at import time, naming the plug-in) and checks that the object has
the methods of its contract (CONTRACTS: the methods its Protocol states). `bench validate` and
`bench run` then check, before any work starts, that every data set x model x generator x strategy x
metric combination of a suite is one the components declare they support (bench.compat).

Every capability record has a `version`: bump it when a change alters what the component produces.
It enters the config hash of every cell that uses the component, so results of the old version are
recomputed instead of counting as up to date.

This module imports no other module of the harness (the registries import it): numpy and typing, torch
for annotations only, so that any module may import it without a cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # annotations only: plug-ins without torch (tables, text vectors) never load it
    import torch
    from torch import nn

# image: uint8 arrays (N, H, W, C); tabular: tables with a schema (bench.table: what each column is);
# vector: plain numeric feature vectors (N, D) without a schema; text: lists of strings.
Modality = Literal["image", "tabular", "vector", "text"]
MODALITIES: tuple[str, ...] = ("image", "tabular", "vector", "text")
# What a strategy or metric that declares no modalities is taken to support: the modalities of the
# contract's first release, written out so that a modality added to MODALITIES later never enrols a
# plug-in that did not ask for it. Built-in plug-ins always declare theirs.
UNDECLARED_MODALITIES: tuple[str, ...] = ("image", "tabular", "vector", "text")


# ---------------------------------------------------------------------------------------------
# Data: what data sets load, generators make and strategies train on.


@dataclass
class Split:
    """One split of a data set: inputs, integer labels and optional sensitive attributes.

    `x` is modality-specific: uint8 images (N, H, W, C), a table, or a list of strings.
    `groups` maps a sensitive attribute's name to one integer or string code per row.
    """

    x: Any
    y: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split(x=self.x[idx], y=self.y[idx], groups={k: v[idx] for k, v in self.groups.items()})


@dataclass
class DatasetSplits:
    """What a Dataset's `load()` returns: the official train and test splits and their description."""

    name: str
    modality: str  # "image", "tabular" (a table with a schema), "vector" (numeric vectors) or "text"
    classes: list[str]
    train: Split
    test: Split
    schema: Any = None  # tabular data: a bench.table.TableSchema (what each column of x is); else None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


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


@dataclass
class Conditions:
    """What a batch of n synthetic examples is conditioned on; generators use what they support."""

    labels: np.ndarray  # target class per example, int64 (n,)
    seeds: Any = None  # seed examples (n, ...) for example-to-example variation, or None
    strength: float = 0.5  # with seeds: 0 returns the seed, 1 ignores it (as SDEdit's noise strength)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # tabular: column -> value per example
    prompts: list[str] | None = None  # text / text-to-image
    # Each seed's uncertainty relative to the round's threshold tau (score / tau: 1 at the threshold,
    # above 1 inside U_tau), or None. Text generators raise their sampling temperature with it.
    uncertainty: np.ndarray | None = None
    # Each seed's own class, where known, or None. A multiple-choice seed needs it: its correct option is
    # moved to the target letter (smollm2 with item_format choice).
    seed_labels: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------
# The task a strategy runs on, what it returns, and what a metric sees.


@runtime_checkable
class TaskView(Protocol):
    """What a strategy may use of its task: a data set cut down to a seeded real-data budget, with its
    validation split, unused pool, task model and training recipe. The runner builds a
    bench.task.Task and hands the strategy its `for_strategy` view (bench.task.StrategyView), which
    holds no test split: reading `task.test`, `task.data.train` or `task.data.test` raises BenchError,
    and so does `task.pool.y` unless the strategy registered with `reads_pool_labels=True` (an oracle;
    its results say so). A metric gets the Task itself (EvalContext.task), which has these members and
    also `test` (the possibly subsampled official test split) and `data` as the loaded DatasetSplits."""

    data: DatasetInfo  # the data set's facts: name, modality, classes, schema, num_classes (not its splits)
    budget: int | str  # real training examples per class, or "all" / "P%" of the training split
    seed: int  # the cell's seed; every sub-seed derives from it (bench.seeding)
    train: Split  # the real budget
    val: Split  # the validation split, carved from the training split
    pool: Split  # unused real training examples (active methods score them): `len`, `x`, `groups`, `subset`;
    #              `y` raises unless the strategy declares reads_pool_labels
    model: Any  # bench.config.NamedSpec: the task model's registered name (.name) and parameters (.params)
    recipe: Any  # bench.config.TrainRecipe: the training recipe (a pydantic model; .model_copy(update=...))
    synthetic: Any  # bench.config.SyntheticSpec (generator, budget_per_class, mix_ratio); None without one
    device: str  # where training runs: "cpu", "cuda", "cuda:1"

    @property
    def num_classes(self) -> int: ...

    @property
    def info(self) -> DatasetInfo:
        """The data set's facts that models and generators receive (classes, modality, table schema)."""

    def fit(self, train: Split | None = None, *, seed: int | None = None, recipe: Any = None,
            label: str = "train", **options: Any) -> Any:
        """The task model trained on `train` (default: the real budget) with the task's recipe (or
        `recipe`, a TrainRecipe) and `seed` (default: the task's); `options` go to
        bench.training.fit_classifier (sample_weight, teacher, kl_weight, init). Returns a
        bench.training.Classifier (predict_proba, best_epoch, history)."""


class RoundLog(TypedDict, total=False):
    """One round of a loop strategy (StrategyLog.rounds). The report's per-round figures read `round`,
    `synthetic_total`, `val_accuracy`, `uncertain`, `mean_score_uncertain` and `mean_score_pool`."""

    round: int  # 0: the model trained on the real budget alone; r >= 1: after the r-th generation
    uncertain: int  # |U_tau|: scored pool examples at or above the threshold (count)
    mean_score_uncertain: float | None  # mean uncertainty score in U_tau (the score's unit); None if empty
    mean_score_pool: float  # mean uncertainty score over the scored pool (the score's unit)
    threshold: float  # tau, in the score's unit (fixed after round 1 with tau_mode quantile)
    targeting: dict[str, Any]  # how the round's generation was aimed: {"kind": "seeds" | "attributes" | ...}
    stopped: bool  # the loop stopped at this round without generating
    synthetic_total: int  # synthetic examples generated so far, this round included (count)
    new_per_class: list[int]  # examples generated this round per target class (counts, one per class)
    val_accuracy: float  # the round's model on the validation split (fraction in [0, 1])
    val_loss: float  # its mean cross-entropy on the validation split (nats per example)
    wall_seconds: float  # the round's wall-clock time (seconds)


class StrategyLog(TypedDict, total=False):
    """The keys of a strategy's log (StrategyResult.log, written as a result's `strategy_log`) that the
    report reads or that the built-in strategies share; a strategy may add keys of its own. The report
    reads `synthetic_examples` (its synthetic-budget figure) and `rounds` (its per-round figures)."""

    real_examples: int  # real training examples the returned model trained on (count)
    synthetic_examples: int  # synthetic examples the returned model's training data held (count)
    synthetic_budget: int  # synthetic examples the strategy could add, all classes together (count)
    mix_ratio: float  # share of the training draws that are synthetic (fraction in [0, 1])
    rounds: list[RoundLog]  # loop strategies: one record per round, round 0 first
    returned_round: int  # loop strategies: the round whose model is returned (0: the real-only model)
    returned_because: str  # why that round (the selection criterion and its values)
    stopped_because: str  # why the loop ended: "max_rounds", "converged", "budget spent", "empty region"
    seeds_from: str  # loop strategies: where generation seeds came from ("U_tau" or "pool")
    pool_size: int  # loop strategies: pool examples scored each round (count)
    best_epoch: int | None  # the epoch (from 0) whose weights were kept by select_on_val; None: the last
    history: list[dict[str, float]]  # per epoch: train_loss, val_loss (nats), val_accuracy (fraction)
    generator: dict[str, Any]  # the fitted generator: name, cache key, cached (bool), and its fit's cost fit_seconds
    #   (wall seconds) and fit_cpu_seconds (process CPU seconds), also when read from the cache (charged alike)
    privacy: dict[str, Any]  # DP strategies: epsilon, delta, noise_multiplier, steps, ... (privacy spent)


@dataclass
class StrategyResult:
    """What `Strategy.run` returns."""

    classifier: Any  # has predict_proba(x) -> (N, C) probabilities (bench.training.Classifier)
    synthetic: Split | None = None  # the synthetic examples it trained on; None: it added none
    log: StrategyLog | dict[str, Any] = field(default_factory=dict)  # JSON-able (StrategyLog: the shared keys)


@dataclass
class EvalContext:
    """What a metric sees: the task, the returned classifier, its predictions on the test split and the
    synthetic examples the strategy added."""

    task: Any  # the whole bench.task.Task: TaskView's members, plus `test` and `data` (the loaded DatasetSplits)
    classifier: Any  # bench.training.Classifier (or anything with predict_proba)
    y_true: np.ndarray  # test labels, int64 (N,)
    probs: np.ndarray  # predicted test probabilities, float64 (N, C)
    synthetic: Split | None  # synthetic examples the strategy added, if any

    @property
    def class_names(self) -> list[str]:
        return self.task.data.classes


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
    # "method": what the suite evaluates; "baseline": a competitor; "control": a strategy that isolates one
    # cause of the method's effect (the same loop with one part swapped out) and is shown in a block of its own.
    kind: Literal["baseline", "method", "control"]
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
    # Reads the labels of the unused pool (an oracle): without it, `task.pool.y` raises. Results say so.
    reads_pool_labels: bool = False
    # "positive": a control that must be detected as better than the primary reference when the suite can
    # see an effect of real data (the power line of the verdict tables); "negative": one that must not come
    # out better. None: neither.
    control_role: Literal["positive", "negative"] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("baseline", "method", "control"):
            raise ValueError(f"kind must be baseline, method or control, got {self.kind!r}")
        if self.control_role not in (None, "positive", "negative"):
            raise ValueError(f"control_role must be positive, negative or None, got {self.control_role!r}")
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
    # The closed interval every value lies in (each entry's, for a per-class or per-group mapping), e.g.
    # (0, 1) for a fraction: a result file holding a value outside it is refused when read. None: no bound.
    range: tuple[float, float] | None = None
    # What the metric reads besides the task's data, which decides whether `bench rescore` can compute
    # it from a finished cell's artifacts (bench.artifacts): "predictions" the stored test
    # probabilities (with the test labels and groups); "synthetic" the synthetic split, kept only
    # under --keep-synthetic; "model" the trained classifier itself (PGD), which no result keeps.
    needs: Literal["predictions", "synthetic", "model"] = "predictions"
    # The level of a model that learned nothing, against which the verdicts check that the primary
    # reference learned the task at all (bench.stats.chance_level): "majority" the share of the test
    # split's most common class (the best constant prediction: accuracy), "uniform" 1/C (what every
    # constant prediction and uniform guessing score: balanced accuracy), "ranking" 0.5 (a score that
    # ranks positives above negatives no better than a coin: AUROC). None: no chance level (F1, NLL,
    # ECE, ...), so no check.
    chance: Literal["majority", "uniform", "ranking"] | None = None

    def __post_init__(self) -> None:
        _declared(self)
        if self.needs not in ("predictions", "synthetic", "model"):
            raise ValueError(f"needs must be predictions, synthetic or model, got {self.needs!r}")
        if self.chance not in (None, "majority", "uniform", "ranking"):
            raise ValueError(f"chance must be majority, uniform, ranking or None, got {self.chance!r}")


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
    """A dataclass of hyper-parameters with the hooks bench.training calls.

    Optional: `embed(x) -> np.ndarray | None`, a split's inputs as the float (N, D) embeddings the model
    trains on (its frozen encoder's), or None when it takes no embeddings (e.g. a text model that
    fine-tunes its encoder on tokens); bench.synthesis.embedding_view and the text-space metrics use it."""

    def build(self, train: Split, info: DatasetInfo) -> "nn.Module":
        """The network; may read statistics of `train` (normalisation) and `info` (classes, schema)."""

    def to_tensor(self, x: Any) -> "torch.Tensor":
        """A split's inputs in their stored tensor form."""

    def prepare_batch(self, xb: "torch.Tensor", train: bool, generator: "torch.Generator | None") -> "torch.Tensor":
        """Float network input; augmentation when train is true."""


@runtime_checkable
class Generator(Protocol):
    """A dataclass of parameters; fitted on the real budget, then sampled under conditions.

    Optional, to start from weights pretrained on the data set's unlabelled training inputs (once per data
    set and setting, cached and shared by every seed; bench.generator runs it, and charges it to no cell):
        pretraining() -> dict | None   what the pretraining depends on (its cache key; `examples`: how many
                                       inputs it reads, None all); None: no pretraining, fit as below
        pretrain(x, info, seed) -> state   on the training split's inputs x, never a label; state picklable
        fit(real, info, seed, pretrained=state) -> self   fine-tunes from it"""

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "Generator": ...

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split: ...


@runtime_checkable
class Strategy(Protocol):
    """A dataclass of parameters (asdict() is its record) with `run`. May also define
    `check_compatible(info_modality, generator_caps)` raising ValueError for a data set or generator
    it cannot work with, so that `bench validate` refuses the combination."""

    def run(self, task: TaskView) -> StrategyResult: ...


@dataclass(frozen=True)
class Measured:
    """A metric's value with the sample counts it was computed on, which the result records beside it
    (`metrics.NAME.samples`): a synthetic-quality number means little without its N. `samples` maps a
    side to the examples actually used, e.g. {"synthetic": 1000, "reference": 2000}: fewer than the
    suite asked for where the strategy produced fewer. `value` None with a `reason`: not computable at
    these counts (FID below 2,049 images a side), recorded as null with the reason."""

    value: float | dict[str, float] | None
    samples: dict[str, int]
    reason: str | None = None


@runtime_checkable
class Metric(Protocol):
    """A function registered in `bench.registry.METRICS` with its direction and modalities:

        @METRICS.register("accuracy", higher_is_better=True, modalities=("image", "tabular", "text"))
        def accuracy(ctx: EvalContext) -> float: ...

    It returns a float, a dict of floats (e.g. one per class), or None where it does not apply (an
    image-quality metric for a strategy without synthetic data); a metric of a sample (synthetic
    quality) returns a `Measured` holding one of these with its sample counts. Keyword parameters after
    `ctx` come from the suite (`metrics: [{name: fid, params: {samples: 500}}]`). Direction lives with
    the metric."""

    def __call__(self, ctx: EvalContext, /, **params: Any) -> float | dict[str, float] | Measured | None: ...


def contract_methods(protocol: type) -> tuple[str, ...]:
    """The methods `protocol` states, in order: its public methods, and `__call__` for a callable one
    (a metric). The registry checks that an entry has each of them."""
    return tuple(name for name, value in vars(protocol).items()
                 if callable(value) and (not name.startswith("_") or name == "__call__"))


PROTOCOLS: dict[str, type] = {  # registry kind -> its contract (suites register paths: no contract)
    "dataset": Dataset,
    "model": TaskModel,
    "generator": Generator,
    "strategy": Strategy,
    "metric": Metric,
}

CONTRACTS: dict[str, tuple[str, ...]] = {kind: contract_methods(p) for kind, p in PROTOCOLS.items()}

CAPABILITIES: dict[str, type] = {
    "dataset": DatasetCaps,
    "model": ModelCaps,
    "generator": GeneratorCaps,
    "strategy": StrategyCaps,
    "metric": MetricCaps,
    "suite": SuiteCaps,
}
