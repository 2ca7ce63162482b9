"""Before any work starts: can the components of a suite work together? Every data set x model x
generator x strategy x metric combination is checked against the capabilities the components declared
when they registered (bench.api), so that `bench validate` refuses what would fail in every cell
instead of the run failing cell after cell.

What is checked, for each data set of the suite:
- the task model, the suite's generator (when a strategy samples it), each strategy's own generator and
  each strategy and metric declare the data set's modality;
- a strategy's own `check_compatible(modality, generator_caps)` hook, when it has one (e.g. a
  targeting that needs table columns);
- (a warning, not an error) a strategy that declares itself the control of another (`control_of`) has
  an entry with that strategy's parameters, less the other's `targeting_params`;
- every budget leaves every class at least one training example after the validation split (n per
  class plus val_per_class fit in the smallest class; a share P% of it rounds to at least one example),
  and the test subset fits in the smallest class of the test split: from the sizes the data set, built
  with the suite's parameters, gives (`train_per_class` / `test_per_class` attributes), else the sizes it
  declared when it registered (which hold for its default parameters).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

from bench.config import budget_share
from bench.errors import BenchError, SuiteWarning
from bench.registry import DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES


def check_suite(suite: Any, strategies: list[tuple[Any, Any]]) -> None:
    """Raise BenchError naming the first incompatible pair. `strategies` pairs each strategy spec of
    the suite with its built instance."""
    generator = suite.synthetic.generator.name if suite.synthetic is not None else None
    for ds in suite.datasets:
        dcaps = DATASETS.caps(ds.name)
        modality = dcaps.modality
        where = f"data set {ds.name!r} is {modality}"
        if modality not in MODELS.caps(suite.model.name).modalities:
            raise BenchError(f"{where}, but model {suite.model.name!r} takes "
                             f"{_list(MODELS.caps(suite.model.name).modalities)} data")
        for spec, strategy in strategies:
            scaps = STRATEGIES.caps(spec.name)
            if modality not in scaps.modalities:
                raise BenchError(f"{where}, but strategy {spec.key!r} works on {_list(scaps.modalities)} data")
            if scaps.synthesises and suite.synthetic is None:
                raise BenchError(f"strategy {spec.key!r} synthesises data: the suite needs a `synthetic:` section "
                                 "(generator, budget_per_class, mix_ratio)")
            gcaps = None
            if scaps.uses_generator and generator is not None:
                gcaps = GENERATORS.caps(generator)
                if modality not in gcaps.modalities:
                    raise BenchError(f"{where}, but the suite's generator {generator!r} (used by strategy "
                                     f"{spec.key!r}) makes {_list(gcaps.modalities)} data")
                if gcaps.datasets is not None and ds.name not in gcaps.datasets:
                    raise BenchError(f"the suite's generator {generator!r} (used by strategy {spec.key!r}) models "
                                     f"only the data set{'s' if len(gcaps.datasets) > 1 else ''} "
                                     f"{', '.join(gcaps.datasets)}, not {ds.name!r}")
            if scaps.own_generator is not None:
                own = GENERATORS.caps(scaps.own_generator)
                needs = "vector" if modality == "text" and scaps.text_as_vectors else modality
                if needs not in own.modalities:
                    raise BenchError(f"{where}, but strategy {spec.key!r} fits generator {scaps.own_generator!r}, "
                                     f"which makes {_list(own.modalities)} data")
            check = getattr(strategy, "check_compatible", None)
            if check is not None:
                try:
                    check(modality, gcaps)
                except ValueError as exc:
                    raise BenchError(f"{where}: strategy {spec.key!r}: {exc}") from None
        _check_control(strategies)
        for m in suite.metrics:
            mods = METRICS.caps(m.name).modalities
            if modality not in mods:
                raise BenchError(f"{where}, but metric {m.key!r} applies to {_list(mods)} data")
        _check_sizes(ds, dcaps, suite)


def _check_control(strategies: list[tuple[Any, Any]]) -> None:
    """Warn (SuiteWarning) when an entry of a strategy X has no entry of its control (a strategy whose
    capabilities declare control_of=X) with the same parameters, less the parameters that only X's
    targeting reads (X's `targeting_params`): the control then differs from X in more than where the
    seeds come from. Nothing is checked for X when the suite has no entry of its control."""

    def loop(strategy: Any, targeting: tuple[str, ...]) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(strategy).items() if k not in targeting}

    for target in sorted({c for c in (STRATEGIES.caps(spec.name).control_of for spec, _ in strategies) if c}):
        targeting = STRATEGIES.caps(target).targeting_params
        controls = [(spec, loop(s, targeting)) for spec, s in strategies
                    if STRATEGIES.caps(spec.name).control_of == target]
        unmatched = []  # (entry, how it differs from the first control)
        for spec, strategy in strategies:
            if spec.name != target:
                continue
            mine = loop(strategy, targeting)
            if any(params == mine for _, params in controls):
                continue
            ref_spec, ref = controls[0]
            diff = ", ".join(f"{k} {mine[k]!r} vs {ref.get(k)!r}" for k in sorted(mine) if mine[k] != ref.get(k))
            unmatched.append((spec.key, diff))
        if unmatched:  # one line for all of them: an ablation suite has many on purpose
            first, diff = unmatched[0]
            more = f" (and {len(unmatched) - 1} more entries of {target}: {', '.join(k for k, _ in unmatched[1:])})" \
                if len(unmatched) > 1 else ""
            warnings.warn(f"strategy {first!r} and its control {controls[0][0].key!r} differ in more than the targeting "
                          f"({diff}){more}: a comparison with the control then measures more than where the seeds "
                          "come from; give both the same loop parameters (a YAML anchor), or read such entries as "
                          "ablations", SuiteWarning, stacklevel=2)


def _smallest_classes(ds: Any, caps: Any) -> tuple[int | None, int | None]:
    """The sizes of the smallest class of the data set's training and test splits: what the data set,
    built with the suite's parameters, says of itself (an attribute `train_per_class` / `test_per_class`:
    an int for every class, or one per class), else what it declared when it registered, which holds for
    its default parameters only; None where unknown (the split is then checked when a cell cuts it)."""
    built = DATASETS.build(ds.name, ds.params)  # only stores its parameters, checked against their declared ranges
    out: list[int | None] = []
    for attr in ("train_per_class", "test_per_class"):
        own, declared = getattr(built, attr, None), getattr(caps, attr)
        if isinstance(own, int) and not isinstance(own, bool):
            out.append(own)
        elif isinstance(own, (tuple, list)) and own and all(isinstance(n, int) for n in own):
            out.append(min(own))
        elif declared is not None and not ds.params:
            out.append(min(declared))
        else:
            out.append(None)
    return out[0], out[1]


def _check_sizes(ds: Any, caps: Any, suite: Any) -> None:
    """Every budget leaves every class at least one training and one validation example (bench.task cuts
    the splits: n per class after val_per_class; a share P% of each class's rest, rounded half up), and
    the test subset fits the test split."""
    name = ds.name
    train, test = _smallest_classes(ds, caps)
    if train is not None:
        if suite.val_per_class > train:
            raise BenchError(f"val_per_class {suite.val_per_class} exceeds the {train} training examples of the "
                             f"smallest class of data set {name!r}")
        rest = train - suite.val_per_class
        for budget in suite.budgets:
            share = budget_share(budget)
            if share is None and budget > rest:
                raise BenchError(f"budget {budget} per class plus val_per_class {suite.val_per_class} exceeds the "
                                 f"{train} training examples of the smallest class of data set {name!r}")
            if share is not None and rest < 1:
                raise BenchError(f"budget {budget!r}: val_per_class {suite.val_per_class} takes all {train} training "
                                 f"examples of the smallest class of data set {name!r}, leaving none to train on")
            if share is not None and math.floor(share * rest + 0.5) < 1:
                raise BenchError(f"budget {budget!r} leaves the smallest class of data set {name!r} no training example "
                                 f"({share * rest:.3g} of its {rest} examples after val_per_class, rounded): "
                                 f"use at least {50 / rest:.3g}%")
    if test is not None and suite.test_per_class is not None and suite.test_per_class > test:
        raise BenchError(f"test_per_class {suite.test_per_class} exceeds the {test} test examples of the "
                         f"smallest class of data set {name!r}")


def _list(modalities: tuple[str, ...]) -> str:
    return " or ".join(modalities)
