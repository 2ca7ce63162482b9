"""Suite configuration: the pydantic schema of a suite's YAML file, its presets, the overrides of
`bench run --set KEY=VALUE` (and its short forms `--sd-path`, `--lm-path`), the defensive reader of
suite files, and the config hash of a cell. (Expanding a suite into cells, each with its config, is
bench.cells's work.)

A suite file holds the cpu (default) settings at its top level and, under `presets`, partial
overrides per preset (e.g. `gpu`), deep-merged onto the top level (mappings merge, lists and
scalars replace). Bump `version` whenever a change alters scores: it is part of every cell's hash.
`--set` overrides then replace single values of the merged suite (`apply_overrides`), before validation.

Suite files are read defensively (`read_suite_file`): at most MAX_SUITE_BYTES, UTF-8, YAML through a
SafeLoader that refuses duplicate keys, tags other than the plain scalar, sequence and mapping tags
(PLAIN_TAGS: no !!set, !!binary, !!timestamp or !!python/...), and aliases that expand beyond
MAX_SUITE_NODES nodes (the "billion laughs" bomb) or refer to themselves. Names that become folders of the results (suite,
preset, data set, strategy and metric ids) must be safe slugs (SLUG), so no path leaves `--out`.

This module names no plug-in: what a generator accepts (a local model folder) comes from the
capabilities it declared (bench.api.GeneratorCaps) and from the parameters of its class.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from bench.errors import BenchError
from bench.registry import GENERATORS, SUITES

DEFAULT_PRESET = "cpu"

# A name that becomes a folder of the results: letters, digits, '.', '_', '-', starting with a letter or
# digit, at most 100 characters (well within a file name's 255 bytes), and no '..'.
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SEED_LIMIT = 2**32  # numpy's seed limit: np.random.seed and default_rng(...) of one int need 0 <= seed < 2**32
MAX_SUITE_BYTES = 1_000_000  # a suite is a few KB; a larger file is a mistake (or an attack)
MAX_SUITE_NODES = 100_000  # YAML nodes after alias expansion; the largest built-in suite has under 1,000
# Bounds of the recipe and of the synthetic budget: past them a run "succeeds" with numbers that mean
# nothing (a learning rate of 1e30 diverges to NaN weights, a batch larger than any data set is one batch)
# or never ends (a billion synthetic examples per class). The built-in suites stay far inside them.
MAX_LR = 10.0  # a learning rate (SGD with a one-cycle schedule peaks near 0.05-1; Adam near 1e-3)
MAX_WEIGHT_DECAY = 1.0  # weight decay; at lr x weight_decay >= 1 an SGD step zeroes the weights
MAX_BATCH = 2**20  # examples in a training or evaluation batch (a million)
MAX_EPOCHS = 100_000  # training epochs
MAX_SYNTHETIC_PER_CLASS = 100_000  # synthetic examples per class a strategy may add in all
MAX_VERSION = 2**31 - 1  # a suite's version (an int32: what every JSON reader holds exactly)
# Margin of practical equivalence of the verdicts (bench.stats), in points of the primary metric (0.01 of
# it: a percentage point for accuracy). Above 50 points half of a [0, 1] metric's range would count as
# "no practical difference", which is a mistake, not a margin.
DEFAULT_EQUIVALENCE_MARGIN = 1.0
MAX_EQUIVALENCE_MARGIN = 50.0
# The YAML tags a suite may use (the plain scalars, sequences and mappings of YAML 1.1, and the merge key
# `<<`); others (!!set, !!binary, !!timestamp, !!python/...) build values the schema does not describe.
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge"))


def check_slug(value: str) -> str:
    if not SLUG.fullmatch(value) or ".." in value:
        raise ValueError(f"{value!r} is not a safe name: use letters, digits, '.', '_' and '-', start with a "
                         "letter or digit, no '..', at most 100 characters (it names a folder of the results)")
    return value


def check_seed(value: int) -> int:
    if value >= SEED_LIMIT:
        raise ValueError(f"seed {value} is too large: seeds must be below 2**32 = {SEED_LIMIT} (numpy's limit)")
    return value


Slug = Annotated[str, AfterValidator(check_slug)]
Seed = Annotated[NonNegativeInt, AfterValidator(check_seed)]

# A real-data budget: an integer n (n training examples of every class: class-balanced, capped by the
# smallest class), "all" (every training example left once the validation split is carved) or "P%" (P
# percent of those, stratified: the data set's natural class balance). bench/task.py cuts the splits.
BUDGET_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def check_budget(value: Any) -> int | str:
    """A budget as written in a suite, normalised: an int >= 1, "all", or "P%" with 0 < P <= 100 written
    without trailing zeros ("10%", "2.5%"; "100%" is "all")."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"a budget of {value} examples per class: it must be at least 1")
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        if m := BUDGET_PERCENT.fullmatch(text):
            share = float(m.group(1))
            if not 0 < share <= 100:
                raise ValueError(f"budget {value!r}: a percentage must lie in (0, 100]")
            return "all" if share == 100 else f"{share:g}%"
    raise ValueError(f"budget {value!r} is not one of: a positive integer (examples per class), 'all' (every "
                     "training example), 'P%' (a stratified share of the training examples, e.g. '10%')")


def budget_share(budget: int | str) -> float | None:
    """The share of the training examples a budget form takes (1.0 for "all"); None for n per class."""
    if isinstance(budget, int):
        return None
    return 1.0 if budget == "all" else float(budget[:-1]) / 100


def budget_text(budget: int | str) -> str:
    """A budget in words, for headings: "100 real per class", "all training rows", "10% of the training rows"."""
    if isinstance(budget, int):
        return f"{budget} real per class"
    return "all training rows" if budget == "all" else f"{budget} of the training rows (stratified)"


Budget = Annotated[int | str, BeforeValidator(check_budget)]


class _Strict(BaseModel):
    # allow_inf_nan=False: every float of a suite is finite (".inf" or ".nan" is "Input should be a finite number")
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NamedSpec(_Strict):
    """A registered component and the keyword parameters it is built with."""

    name: Slug
    params: dict[str, Any] = Field(default_factory=dict)


class KeyedSpec(NamedSpec):
    """A suite entry that may appear twice with other parameters: a strategy (ablations) or a metric
    (one per sensitive attribute). `id` tells the entries apart and defaults to the name."""

    id: Slug | None = None

    @property
    def key(self) -> str:
        return self.id or self.name

    def record(self) -> Any:
        """As written into a cell's config: the bare name when there is nothing else."""
        if not self.params and self.id is None:
            return self.name
        return {"name": self.name, "params": self.params, **({"id": self.id} if self.id is not None else {})}


class TrainRecipe(_Strict):
    """How a task model is trained; the defaults are the plan's recipe."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(3e-4, gt=0, le=MAX_LR)
    weight_decay: float = Field(0.0, ge=0, le=MAX_WEIGHT_DECAY)
    batch_size: int = Field(128, gt=0, le=MAX_BATCH)
    epochs: int = Field(30, gt=0, le=MAX_EPOCHS)
    # Model selection on the validation split (carved from the training split, never the test set):
    # keep the weights of the best epoch by `select_metric`. "accuracy": the highest validation
    # accuracy, ties broken by the lower validation loss; the split holds val_per_class examples of
    # every class, so this is balanced accuracy. "loss": the lowest validation loss, which can prefer an
    # early, barely trained, near-constant predictor (its loss is low because it is unsure), so it is
    # not the default. Epochs before select_from x epochs are never returned (0.1: the first tenth of
    # training; the committed runs without synthetic data reached their best validation accuracy after 11-93% of their epochs).
    select_on_val: bool = True
    select_metric: Literal["accuracy", "loss"] = "accuracy"
    select_from: float = Field(0.1, ge=0, lt=1)  # fraction of the epochs before which no epoch is selected
    eval_batch_size: int = Field(1000, gt=0, le=MAX_BATCH)
    # Against overfitting (to synthetic data in particular): stop after this many selectable epochs
    # without a better `select_metric` (None: never), and/or stochastic weight averaging over the last epochs.
    early_stopping_patience: Annotated[int, Field(gt=0, le=MAX_EPOCHS)] | None = None
    swa: bool = False
    swa_start: float = Field(0.75, gt=0, lt=1)  # fraction of the epochs after which weights are averaged
    swa_lr: Annotated[float, Field(gt=0, le=MAX_LR)] | None = None  # constant learning rate during averaging; None keeps lr
    # CPU speed options; see README "Performance" for the measurements behind the defaults.
    channels_last: bool = False
    bf16_autocast: bool = False
    # Learning-rate schedule, stepped after every optimizer step (torch.optim.lr_scheduler.OneCycleLR,
    # momentum not cycled). "constant": `lr` throughout (the plan's recipe). "cosine" / "linear": a
    # warm-up from lr/25 to `lr` over the first `warmup` fraction of the steps, then a decay to lr/25e4 at
    # the last step of `epochs`, both along a half cosine / a straight line (a one-cycle schedule, as in
    # airbench: a high SGD learning rate trains fast early and settles late). The schedule spans
    # `epochs` even when early stopping ends training sooner.
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup: float = Field(0.0, ge=0, lt=1)  # fraction of all steps; 0 starts at the peak `lr`
    # Cross-entropy against (1 - s) one-hot + s uniform targets (F.cross_entropy's label_smoothing);
    # 0: plain cross-entropy. Training loss only: validation loss and metrics stay plain.
    label_smoothing: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _schedule_without_swa(self) -> "TrainRecipe":
        if self.swa and self.lr_schedule != "constant":
            raise ValueError("swa sets its own learning rate (swa_lr) over the last epochs: use lr_schedule constant with swa")
        return self


class SyntheticSpec(_Strict):
    """The synthetic-data side of a comparison, identical for every strategy that synthesises."""

    generator: NamedSpec
    budget_per_class: int = Field(gt=0, le=MAX_SYNTHETIC_PER_CLASS)  # synthetic examples per class a strategy may add in all
    # Expected share of synthetic examples among the training draws (class-weighted sampling);
    # 0.5 draws real and synthetic examples equally often.
    mix_ratio: float = Field(0.5, gt=0, lt=1)


class SuiteConfig(_Strict):
    name: Slug
    # An integer written as one (not true, '1' or 1.0), 1 to MAX_VERSION; part of every cell's hash.
    version: StrictInt = Field(gt=0, le=MAX_VERSION)
    description: str = ""
    primary_metric: str
    # Each data set once (its name is a folder of the results); `data_dir` is not a parameter of the suite:
    # `bench run --data-dir` (or BENCH_DATA_DIR) says where the data lie, the same for every data set.
    datasets: list[NamedSpec] = Field(min_length=1)
    budgets: list[Budget] = Field(min_length=1)  # n per class, "all" or "P%" (see check_budget)
    val_per_class: PositiveInt  # validation examples per class, carved from the training split
    test_per_class: PositiveInt | None = None  # stratified test subset; None = the whole test set
    model: NamedSpec
    train: TrainRecipe = Field(default_factory=TrainRecipe)
    synthetic: SyntheticSpec | None = None
    strategies: list[KeyedSpec] = Field(min_length=1)
    # A metric is a name, or {name, params[, id]} for metrics with parameters (e.g. sample counts);
    # the id names a second entry of the same metric (fairness per attribute: id demographic_parity_race).
    metrics: list[KeyedSpec] = Field(min_length=1)
    seeds: list[Seed] = Field(min_length=1)
    # Seconds a cell may run before it becomes an error result of type "Timeout" and the run goes on
    # (None: no limit; `bench run --cell-timeout` overrides). Not part of the config hash: a limit does
    # not change what a finished cell computes.
    cell_timeout: PositiveFloat | None = None
    # Also save each cell's whole synthetic split under <out>/.synthetic (bench.artifacts), so that
    # synthetic-quality metrics can be recomputed by `bench rescore`; `bench run --keep-synthetic` sets
    # it. Not part of the config hash either: it changes what is stored, not what a cell computes.
    keep_synthetic: bool = False
    # Points of the primary metric within which a strategy counts as `equivalent` to a reference: the 90% CI
    # of their paired difference lies inside ±this (TOST, bench.stats). A finite number written as one (not
    # true or '1'), above 0, at most MAX_EQUIVALENCE_MARGIN. Not part of the config hash either: it changes
    # how results are judged (the leaderboard reads it from the registered suite file), not what a cell computes.
    equivalence_margin: float = Field(DEFAULT_EQUIVALENCE_MARGIN, strict=True, gt=0, le=MAX_EQUIVALENCE_MARGIN)
    preset: Slug = DEFAULT_PRESET  # filled in by load_suite; not written in the file

    @field_validator("datasets", "metrics", "strategies", mode="before")
    @classmethod
    def _names_to_specs(cls, v: Any) -> Any:
        """A bare name stands for {name: NAME} with no parameters."""
        return [{"name": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    @field_validator("metrics", "strategies")
    @classmethod
    def _unique_keys(cls, v: list[KeyedSpec], info: Any) -> list[KeyedSpec]:
        if dup := _repeated([s.key for s in v]):
            raise ValueError(f"{info.field_name} must be unique, repeated: {', '.join(dup)} (give each an `id`)")
        return v

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, v: list[NamedSpec]) -> list[NamedSpec]:
        if dup := _repeated([d.name for d in v]):
            raise ValueError(f"each data set once, repeated: {', '.join(dup)} (its name is a folder of the results)")
        for d in v:
            if "data_dir" in d.params:
                raise ValueError(f"data set {d.name!r}: data_dir is not a suite parameter: give the folder with "
                                 "`bench run --data-dir` (or BENCH_DATA_DIR)")
        return v

    @field_validator("budgets", "seeds")
    @classmethod
    def _unique_values(cls, v: list[Any], info: Any) -> list[Any]:
        """Budgets are compared normalised ('10%' and '10.0%' are one budget, '100%' is 'all')."""
        if dup := _repeated([str(x) for x in v]):
            raise ValueError(f"{info.field_name} must be unique, repeated: {', '.join(dup)}"
                             + (" (after normalising: '10.0%' is '10%', '100%' is 'all')"
                                if info.field_name == "budgets" else ""))
        return v

    @property
    def metric_keys(self) -> list[str]:
        return [m.key for m in self.metrics]

    def metric_record(self) -> list[Any]:
        """The metrics as written into a cell's config."""
        return [m.record() for m in self.metrics]


def _repeated(keys: list[str]) -> list[str]:
    return sorted({k for k in keys if keys.count(k) > 1})


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`: mappings merge key by key, anything else replaces. A mapping that
    names a different component (`name: B` over `name: A`) replaces the whole mapping,
    since the parameters of one component mean nothing to another."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        old = out.get(k)
        merge = isinstance(v, dict) and isinstance(old, dict) and v.get("name", old.get("name")) == old.get("name")
        out[k] = deep_merge(old, v) if merge else copy.deepcopy(v)
    return out


def suite_path(name_or_path: str) -> Path:
    """A registered suite's YAML file, or the path itself when it names a .yaml/.yml file."""
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if path.is_dir():
            raise BenchError(f"suite file {path} is a folder, not a file")
        if not path.is_file():
            raise BenchError(f"suite file {path} does not exist")
        return path
    return Path(SUITES.get(name_or_path))


class SuiteLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses, with the line and column, a duplicate mapping key (instead of
    keeping the last one), an alias that refers to itself, and aliases that expand to more than
    MAX_SUITE_NODES nodes. PyYAML shares an aliased object instead of copying it, so a "billion laughs"
    file loads in microseconds; it is the validation and hashing of the expanded tree that would take
    gigabytes, so the expanded size is counted on the composed node graph (each node once)."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            self._check(node)
        return node

    def _check(self, root: yaml.Node) -> None:
        size: dict[int, int] = {}  # id(node) -> nodes in its expanded subtree
        on_path: set[int] = set()  # ancestors of the node being visited (an alias to one is a cycle)
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, finished = stack.pop()
            children = _children(node)
            if finished:
                on_path.discard(id(node))
                size[id(node)] = 1 + sum(size[id(c)] for c in children)
                if size[id(node)] > MAX_SUITE_NODES:
                    raise yaml.composer.ComposerError(
                        None, None, f"aliases expand to more than {MAX_SUITE_NODES:,} YAML nodes (an alias bomb?); "
                        "a suite has a few hundred", node.start_mark)
                continue
            if id(node) in size:
                continue
            if node.tag not in PLAIN_TAGS:
                tag = node.tag.replace("tag:yaml.org,2002:", "!!")
                raise yaml.constructor.ConstructorError(
                    None, None, f"the YAML tag {tag} is not allowed: a suite holds plain values (text, numbers, "
                    "true/false, null), lists and mappings" + (" (quote a date)" if tag == "!!timestamp" else ""),
                    node.start_mark)
            on_path.add(id(node))
            stack.append((node, True))
            if isinstance(node, yaml.MappingNode):
                self._check_keys(node)
            for child in children:
                if id(child) in on_path:
                    raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it",
                                                      child.start_mark)
                stack.append((child, False))

    def _check_keys(self, node: yaml.MappingNode) -> None:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<: *anchor` merges: keys written beside it override the merged ones
            key = self.construct_object(key_node)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # unhashable: the constructor reports it
                continue
            if earlier is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {earlier.start_mark.line + 1})",
                    key_node.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_suite_file(path: Path) -> dict[str, Any]:
    """The top-level mapping of a suite file; any problem with the file is a one-line BenchError."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SUITE_BYTES + 1)
    except IsADirectoryError:
        raise BenchError(f"suite file {path} is a folder, not a file") from None
    except OSError as exc:
        raise BenchError(f"cannot read suite file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SUITE_BYTES:
        raise BenchError(f"suite file {path} is larger than {MAX_SUITE_BYTES:,} bytes; a suite is a few KB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"suite file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); a suite is a YAML file") from None
    try:
        raw = yaml.load(text, Loader=SuiteLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.reader.ReaderError as exc:
        raise BenchError(f"malformed YAML in {path}: unacceptable character #x{exc.character:04x} at offset "
                         f"{exc.position}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BenchError(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise BenchError(f"malformed YAML in {path}: nested too deeply") from None
    if not isinstance(raw, dict):
        raise BenchError(f"suite file {path} must hold a mapping at its top level")
    return raw


def load_suite(name_or_path: str, preset: str = DEFAULT_PRESET, seeds: list[int] | None = None,
               model_path: str | None = None, lm_path: str | None = None,
               overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> SuiteConfig:
    """The suite `name_or_path` with `preset` merged in, then `seeds` (replacing the file's), then
    `overrides` (dotted path -> value, in order: `apply_overrides`, `bench run --set`), then
    `model_path` (`--sd-path`) and `lm_path` (`--lm-path`): short forms of the override
    MODEL_PATH_KEY, each refused unless the suite's generator takes that kind of folder. `model_path`:
    a generator that declares `needs_model_path` (local weights it cannot run without); `lm_path`: a
    text generator with a `model_path` parameter (a local language model instead of its default)."""
    path = suite_path(name_or_path)
    raw = read_suite_file(path)
    presets = raw.pop("presets", {}) or {}
    if not isinstance(presets, dict):
        raise BenchError(f"{path}: `presets` must be a mapping of preset name to overrides")
    if preset != DEFAULT_PRESET or preset in presets:
        if preset not in presets:
            known = ", ".join(sorted({DEFAULT_PRESET, *map(str, presets)}))
            raise BenchError(f"suite {raw.get('name', path.stem)!r} has no preset {preset!r}; known: {known}")
        if not isinstance(presets[preset] or {}, dict):
            raise BenchError(f"{path}: preset {preset!r} must be a mapping of overrides")
        raw = deep_merge(raw, presets[preset] or {})
    if seeds is not None:
        raw["seeds"] = seeds
    where = f"suite {raw.get('name', path.stem)!r} [{preset}]"
    raw = apply_overrides(raw, overrides or (), where)
    for folder, flag in ((model_path, "--sd-path"), (lm_path, "--lm-path")):
        if folder is None:
            continue
        name = _generator_name(raw)
        if flag == "--sd-path" and not (name and GENERATORS.caps(name).needs_model_path):
            raise BenchError(f"{where}: its generator {name or '(none)'} loads no model folder, so --sd-path "
                             "does not apply")
        if flag == "--lm-path" and not (name and "text" in GENERATORS.caps(name).modalities
                                        and _has_parameter(name, "model_path")):
            raise BenchError(f"{where}: its generator {name or '(none)'} is not a text generator with a model_path, "
                             "so --lm-path does not apply")
        raw = apply_overrides(raw, [(MODEL_PATH_KEY, str(folder))], where)
    raw["preset"] = preset
    return validate_suite(raw, source=str(path))


MODEL_PATH_KEY = "synthetic.generator.params.model_path"  # what --sd-path and --lm-path set
COMPONENT_KEYS = ("name", "params", "id")  # the keys of a component written as a bare name


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any] | Iterable[tuple[str, Any]],
                    where: str = "the suite") -> dict[str, Any]:
    """`raw` (a suite's mapping, preset merged) with each dotted KEY of `overrides` set to its value, in
    order; `raw` itself is not changed (containers along a path are copied, since YAML aliases share
    them between entries). A segment is a mapping's key, or in a list an entry's index (0, 1, ...) or
    the `id` or name of a named entry (strategies.ID.params.rounds). Every segment but the last must
    exist, except a component's `params` (a component written as a bare name counts as {name: NAME});
    the last may be new: validation (and the component's parameter check) judges it. BenchError, naming
    `--set KEY` and `where`, for a path that does not exist."""
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for key, value in items:
        raw = _set_path(raw, str(key).split("."), 0, value, key, where)
    return raw


def _set_path(node: Any, parts: list[str], depth: int, value: Any, key: str, where: str) -> Any:
    """A copy of `node` with `value` at `parts[depth:]`."""
    head, last = parts[depth], depth == len(parts) - 1
    at = ".".join(parts[:depth]) or "the top level"
    if isinstance(node, str) and depth > 0 and head in COMPONENT_KEYS:
        node = {"name": node}  # a bare component name stands for {name: NAME}
    if isinstance(node, dict):
        if head not in node and not last and not (head == "params" and "name" in node):
            known = ", ".join(map(str, node)) or "nothing"
            raise BenchError(f"--set {key}: {where} has no {head!r} at {at} (there: {known})")
        child = node.get(head)
        if child is None and head == "params" and not last:
            child = {}
        return {**node, head: value if last else _set_path(child, parts, depth + 1, value, key, where)}
    if isinstance(node, list):
        i = _entry(node, head, key, where, at)
        out = list(node)
        out[i] = value if last else _set_path(node[i], parts, depth + 1, value, key, where)
        return out
    raise BenchError(f"--set {key}: {where}: {at} is {_kind(node)}, so it has no {head!r}")


def _entry(entries: list[Any], head: str, key: str, where: str, at: str) -> int:
    """The index of a list's entry named by `head`: its index, else the entry whose id (or name) it is."""
    if head.isdigit():
        if int(head) < len(entries):
            return int(head)
        raise BenchError(f"--set {key}: {where}: {at} has {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
                         f"no index {head}")
    keys = [e if isinstance(e, str) else e.get("id") or e.get("name") if isinstance(e, dict) else None
            for e in entries]
    found = [i for i, k in enumerate(keys) if k == head]
    if len(found) == 1:
        return found[0]
    if found:
        raise BenchError(f"--set {key}: {where}: {len(found)} entries of {at} are named {head!r}: give the index")
    names = "".join(f"{k}; " for k in keys if k is not None)
    hint = f"entries: {names}or an index 0-{len(entries) - 1}" if entries else "it is empty"
    raise BenchError(f"--set {key}: {where}: {at} has no entry {head!r} ({hint})")


def _kind(node: Any) -> str:
    return "empty (null)" if node is None else f"{node!r} ({type(node).__name__})"


def _generator_name(raw: dict[str, Any]) -> str | None:
    """The name of the suite's generator (synthetic.generator), or None when it has none."""
    synthetic = raw.get("synthetic")
    generator = synthetic.get("generator") if isinstance(synthetic, dict) else None
    name = generator if isinstance(generator, str) else generator.get("name") if isinstance(generator, dict) else None
    return name if isinstance(name, str) and name else None


def _has_parameter(name: str, parameter: str) -> bool:
    """Whether generator `name`'s class (a dataclass of parameters, bench.api) takes `parameter`."""
    cls = GENERATORS.get(name)
    return dataclasses.is_dataclass(cls) and any(f.name == parameter for f in dataclasses.fields(cls))


def validate_suite(raw: dict[str, Any], source: str) -> SuiteConfig:
    try:
        return SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise BenchError(f"invalid suite {source}: {loc}: {err['msg']}{more}") from None


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a cell's config: equal hashes mean the same experiment."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
