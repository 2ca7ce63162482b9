"""The contract of a generator, the conditions it is sampled with, and the on-disk cache of fitted
generators.

A generator is a dataclass registered in `bench.registry.GENERATORS` with:

    version: int                                  bump when a change alters what fit/sample produce
    fit(real: Split, num_classes: int, seed: int) -> self
    sample(n: int, conditions: Conditions, rng: numpy.random.Generator) -> Split

Fitted generators are cached under a content key (generator name, parameters and version, data set,
real-data budget, seed, and a fingerprint of the real examples themselves), so that strategies of one
comparison (random_synthetic, active_synthesis) sample from the very same fitted generator and the
comparison isolates the targeting.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.data import Split, cache_root
from bench.errors import BenchError
from bench.registry import GENERATORS


@dataclass
class Conditions:
    """What a batch of n synthetic examples is conditioned on; generators use what they support."""

    labels: np.ndarray  # target class per example, int64 (n,)
    seeds: Any = None  # seed examples (n, ...) for example-to-example variation, or None
    strength: float = 0.5  # with seeds: 0 returns the seed, 1 ignores it (as SDEdit's noise strength)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # tabular: column -> value per example
    prompts: list[str] | None = None  # text / text-to-image


def build_generator(name: str, params: dict[str, Any]) -> Any:
    cls = GENERATORS.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise BenchError(f"generator {name!r}: bad parameters {params}: {exc}") from None


def fingerprint(split: Split) -> str:
    """sha256 of a split's inputs and labels (arrays hashed by their bytes, other inputs by repr)."""
    h = hashlib.sha256()
    for part in (split.x, split.y):
        a = np.asarray(part)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def generator_key(name: str, generator: Any, dataset: str, budget: int, seed: int, real: Split) -> str:
    record = {
        "generator": name,
        "version": getattr(generator, "version", 0),
        # The device is where the fit ran, not what was fitted: it does not enter the key.
        "params": {k: v for k, v in (dataclasses.asdict(generator) if dataclasses.is_dataclass(generator)
                                     else vars(generator)).items() if k != "device"},
        "dataset": dataset,
        "budget": budget,
        "seed": seed,
        "real": fingerprint(real),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def fitted_generator(task: Any, name: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The generator `name` fitted on the task's real budget: loaded from the cache when present,
    else fitted and stored. Returns it with a log record (key, whether it came from the cache, and
    the fit's wall seconds when it was fitted now)."""
    import time

    generator = build_generator(name, params)
    # What a generator may need to know of the data set, given when it declares the attribute unset:
    if getattr(generator, "class_names", False) is None:  # class names, for prompts
        generator.class_names = list(task.data.classes)
    if getattr(generator, "schema", False) is None and task.data.schema is not None:  # what each table column is
        generator.schema = task.data.schema
    key = generator_key(name, generator, task.data.name, task.budget, task.seed, task.train)
    path = cache_root() / "generators" / f"{name}-{key[:32]}.pkl"
    # A generator with a `device` parameter left at "auto" runs where the task runs (--device).
    follow_task = hasattr(generator, "device") and params.get("device", "auto") == "auto"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                cached = pickle.load(f)
            if follow_task:
                cached.device = task.device
            return cached, {"name": name, "key": key, "cached": True}
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass  # a damaged or outdated entry is refitted below
    if follow_task:
        generator.device = task.device
    start = time.perf_counter()
    generator.fit(task.train, task.num_classes, task.seed)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(generator, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return generator, {"name": name, "key": key, "cached": False, "fit_seconds": seconds}
