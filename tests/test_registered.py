"""Generic checks over every registered entry: a new data set, model, strategy, metric or suite gets
these tests without writing any."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from bench.api import DatasetSplits, EvalContext, Measured, StrategyResult
from bench.cells import expand_cells, load_dataset
from bench.config import NamedSpec, load_suite
from bench.registry import DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES, SUITES
from bench.results import json_safe
from bench.task import Task

# A small task of each modality, for the checks that every declared modality is real.
TINY_DATA = {"tabular": "transactions", "vector": "toy_pockets", "text": "pubmedqa"}
MODEL_OF = {"image": "small_cnn", "tabular": "mlp", "vector": "mlp", "text": "minilm_head"}
DATA_OF_MODEL = {"minilm_choice": ("medqa",)}  # models of one kind of input: multiple-choice items


def task_of(modality: str, tiny_task: Task, model: str, datasets: tuple[str, ...] | None = None) -> Task:
    if modality == "image":
        return dataclasses.replace(tiny_task, model=NamedSpec(name=model, params={}))
    data = load_dataset(NamedSpec(name=datasets[0] if datasets else TINY_DATA[modality]), data_dir=None)
    assert data.modality == modality
    # Text: a small test subset (encoding is the slow part on the CPU).
    return Task.build(data, budget=10, val_per_class=5, seed=0, model=NamedSpec(name=model), recipe=tiny_task.recipe,
                      test_per_class=5 if modality == "text" else None)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_strategy_runs_on_a_tiny_task(name, tiny_task):
    strategy = STRATEGIES.build(name, {})
    assert dataclasses.is_dataclass(strategy), "strategies are dataclasses: asdict() is their parameter record"
    result = strategy.run(tiny_task)
    assert isinstance(result, StrategyResult)
    p = result.classifier.predict_proba(tiny_task.test.x)
    assert p.shape == (len(tiny_task.test), tiny_task.num_classes)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    json.dumps(json_safe(result.log))  # the log goes into the result JSON


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_fits_and_samples_conditioned_examples(name, tiny_task):
    from bench.api import Conditions
    from bench.generator import fitted_generator

    caps = GENERATORS.caps(name)
    if caps.needs_model_path:
        pytest.skip("needs a user-supplied model folder; its own test builds a tiny one")
    assert dataclasses.is_dataclass(GENERATORS.get(name))
    fields = {f.name for f in dataclasses.fields(GENERATORS.get(name))}
    # Every modality the generator declares is one it fits and samples (bench validate trusts it).
    for modality in caps.modalities:
        task = task_of(modality, tiny_task, MODEL_OF[modality], caps.datasets)
        cheapest = {"epochs": 2, "max_new_tokens": 8}  # the cheapest fit, and short texts
        generator, log = fitted_generator(task, name, {k: v for k, v in cheapest.items() if k in fields})
        labels = np.array([0, 1, 1, 0, 1])
        rng = np.random.default_rng(0)
        for seeds in (None, np.asarray(task.pool.x)[:5]):
            out = generator.sample(5, Conditions(labels=labels, seeds=seeds, strength=0.5), rng)
            x = np.asarray(out.x)
            assert x.shape == (5, *np.asarray(task.train.x).shape[1:]) and x.dtype == np.asarray(task.train.x).dtype
            if modality == "text":
                assert all(isinstance(t, str) and t.strip() for t in x)
            assert out.y.tolist() == labels.tolist()


@pytest.mark.parametrize("with_synthetic", [False, True])
@pytest.mark.parametrize("name", METRICS.names())
def test_metric_returns_finite_numbers_or_none(name, with_synthetic, tiny_task):
    """A metric gives finite floats (or a dict of them), or None where it does not apply (e.g. an
    image-quality metric without synthetic data, a per-group metric without groups)."""
    clf = tiny_task.fit()
    synthetic = tiny_task.pool.subset(np.arange(12)) if with_synthetic else None
    ctx = EvalContext(task=tiny_task, classifier=clf, y_true=tiny_task.test.y,
                      probs=clf.predict_proba(tiny_task.test.x), synthetic=synthetic)
    value = METRICS.get(name)(ctx)
    if isinstance(value, Measured):  # a synthetic-quality metric: its counts are non-negative ints
        assert all(isinstance(n, int) and n >= 0 for n in value.samples.values())
        value = value.value
    if value is None:
        return
    values = value.values() if isinstance(value, dict) else [value]
    assert all(isinstance(v, float) and math.isfinite(v) for v in values)


@pytest.mark.parametrize("name", MODELS.names())
def test_model_is_a_dataclass_that_trains(name, tiny_task):
    spec = MODELS.get(name)()
    assert dataclasses.is_dataclass(spec)
    # Every modality the model declares is one it trains on (bench validate trusts the declaration).
    for modality in MODELS.caps(name).modalities:
        task = task_of(modality, tiny_task, name, DATA_OF_MODEL.get(name))
        clf = task.fit(recipe=task.recipe.model_copy(update={"epochs": 1}))
        assert clf.predict_proba(task.test.x).shape == (len(task.test), task.num_classes)


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_loads_consistent_splits(name):
    d = load_dataset(NamedSpec(name=name), data_dir=None)
    caps = DATASETS.caps(name)
    assert isinstance(d, DatasetSplits) and d.modality == caps.modality and d.num_classes == caps.classes
    # The sizes it declares (bench validate checks budgets against them) are the sizes it loads.
    for split, declared in ((d.train, caps.train_per_class), (d.test, caps.test_per_class)):
        if declared is not None:
            assert tuple(np.bincount(split.y, minlength=d.num_classes).tolist()) == declared
    for split in (d.train, d.test):
        assert len(split.x) == len(split.y) > 0
        assert split.y.min() >= 0 and split.y.max() < d.num_classes
        assert all(len(g) == len(split.y) for g in split.groups.values())


@pytest.mark.parametrize("name", SUITES.names())
def test_suite_resolves_in_every_preset(name):
    from bench.config import read_suite_file, suite_path

    presets = ["cpu", *sorted(p for p in (read_suite_file(suite_path(name)).get("presets") or {}) if p != "cpu")]
    for preset in presets:
        cells = expand_cells(load_suite(name, preset=preset))
        assert cells and len({c.hash for c in cells}) == len(cells)


@pytest.mark.parametrize("name", SUITES.names())
def test_cpu_preset_computes_in_float32(name):
    """A suite's default (cpu) preset neither trains its task model nor fits its generator under
    bfloat16 autocast: on CPUs without native bf16 arithmetic (the AVX2 reference machine) that is 8-10x
    slower (README "Performance"). The diffusion generator once defaulted to bf16 and made every cifar10
    synthesis cell take hours; its default is now float32, so a generator that does not say so is fine."""
    suite = load_suite(name)
    assert not suite.train.bf16_autocast
    if suite.synthetic is not None:
        g = suite.synthetic.generator
        assert not g.params.get("bf16", False), f"{name}: generator {g.name} asks for bf16 on the CPU"
        cls = GENERATORS.get(g.name)
        assert not getattr(cls, "bf16", False), f"generator {g.name} defaults to bf16"
