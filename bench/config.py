"""Suite configuration: the pydantic schema of a suite's YAML file, presets, and the expansion of a
suite into cells with their config hashes.

A suite file holds the cpu (default) settings at its top level and, under `presets`, partial
overrides per preset (e.g. `gpu`), deep-merged onto the top level (mappings merge, lists and
scalars replace). Bump `version` whenever a change alters scores: it is part of every cell's hash.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from bench.errors import BenchError
from bench.registry import GENERATORS, SUITES

DEFAULT_PRESET = "cpu"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NamedSpec(_Strict):
    """A registered component and the keyword parameters it is built with."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class KeyedSpec(NamedSpec):
    """A suite entry that may appear twice with other parameters: a strategy (ablations) or a metric
    (one per sensitive attribute). `id` tells the entries apart and defaults to the name."""

    id: str | None = None

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
    lr: PositiveFloat = 3e-4
    weight_decay: float = Field(0.0, ge=0)
    batch_size: PositiveInt = 128
    epochs: PositiveInt = 30
    # Keep the weights of the epoch with the lowest validation loss (the validation split is carved
    # from the training split, never the test set).
    select_on_val: bool = True
    eval_batch_size: PositiveInt = 1000
    # Against overfitting (to synthetic data in particular): stop after this many epochs without a
    # lower validation loss (None: never), and/or stochastic weight averaging over the last epochs.
    early_stopping_patience: PositiveInt | None = None
    swa: bool = False
    swa_start: float = Field(0.75, gt=0, lt=1)  # fraction of the epochs after which weights are averaged
    swa_lr: PositiveFloat | None = None  # constant learning rate during averaging; None keeps lr
    # CPU speed options; see README "Performance" for the measurements behind the defaults.
    channels_last: bool = False
    bf16_autocast: bool = False


class SyntheticSpec(_Strict):
    """The synthetic-data side of a comparison, identical for every strategy that synthesises."""

    generator: NamedSpec
    budget_per_class: PositiveInt  # synthetic examples per class a strategy may add in all
    # Expected share of synthetic examples among the training draws (class-weighted sampling);
    # 0.5 draws real and synthetic examples equally often.
    mix_ratio: float = Field(0.5, gt=0, lt=1)


class SuiteConfig(_Strict):
    name: str
    version: PositiveInt
    description: str = ""
    primary_metric: str
    datasets: list[NamedSpec]
    budgets: list[PositiveInt] = Field(min_length=1)  # real training examples per class
    val_per_class: PositiveInt  # validation examples per class, carved from the training split
    test_per_class: PositiveInt | None = None  # stratified test subset; None = the whole test set
    model: NamedSpec
    train: TrainRecipe = Field(default_factory=TrainRecipe)
    synthetic: SyntheticSpec | None = None
    strategies: list[KeyedSpec] = Field(min_length=1)
    # A metric is a name, or {name, params[, id]} for metrics with parameters (e.g. sample counts);
    # the id names a second entry of the same metric (fairness per attribute: id demographic_parity_race).
    metrics: list[KeyedSpec] = Field(min_length=1)
    seeds: list[NonNegativeInt] = Field(min_length=1)
    preset: str = DEFAULT_PRESET  # filled in by load_suite; not written in the file

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
    names a different component (`name: sd_lora` over `name: diffusion`) replaces the whole mapping,
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
        if not path.is_file():
            raise BenchError(f"suite file {path} does not exist")
        return path
    return Path(SUITES.get(name_or_path))


def read_suite_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BenchError(f"malformed YAML in {path}{where}: {problem}") from None
    except OSError as exc:
        raise BenchError(f"cannot read suite file {path}: {exc.strerror}") from None
    if not isinstance(raw, dict):
        raise BenchError(f"suite file {path} must hold a mapping at its top level")
    return raw


def load_suite(name_or_path: str, preset: str = DEFAULT_PRESET, seeds: list[int] | None = None,
               model_path: str | None = None) -> SuiteConfig:
    """The suite `name_or_path` with `preset` merged in; `seeds` and `model_path` (the local weights
    folder of a generator that needs one, e.g. sd_lora: `--sd-path`) override the file's."""
    path = suite_path(name_or_path)
    raw = read_suite_file(path)
    presets = raw.pop("presets", {}) or {}
    if not isinstance(presets, dict):
        raise BenchError(f"{path}: `presets` must be a mapping of preset name to overrides")
    if preset != DEFAULT_PRESET or preset in presets:
        if preset not in presets:
            known = ", ".join(sorted({DEFAULT_PRESET, *presets}))
            raise BenchError(f"suite {raw.get('name', path.stem)!r} has no preset {preset!r}; known: {known}")
        raw = deep_merge(raw, presets[preset] or {})
    if seeds is not None:
        raw["seeds"] = seeds
    if model_path is not None:
        generator = (raw.get("synthetic") or {}).get("generator")
        name = generator if isinstance(generator, str) else (generator or {}).get("name")
        if not name or not GENERATORS.meta(name).get("needs_model_path"):
            raise BenchError(f"suite {raw.get('name', path.stem)!r} [{preset}]: its generator "
                             f"{name or '(none)'} loads no model folder, so --sd-path does not apply")
        params = {} if isinstance(generator, str) else dict(generator.get("params") or {})
        raw["synthetic"]["generator"] = {"name": name, "params": {**params, "model_path": str(model_path)}}
    raw["preset"] = preset
    return validate_suite(raw, source=str(path))


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
