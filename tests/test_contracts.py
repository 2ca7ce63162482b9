"""The plug-in contracts (bench.api): typed capabilities checked at registration, one build path with
typed parameters, DatasetInfo given explicitly, and `bench validate` refusing every combination of the
built-in components that the components do not declare they support (the registry's cross product)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest

from bench.api import MODALITIES, DatasetInfo
from bench.cells import expand_cells
from bench.config import validate_suite
from bench.errors import BenchError
from bench.generator import fitted_generator
from bench.registry import DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES, Registry

# What each built-in component is meant to work on, written out independently of the registrations:
# if a declaration drifts (or a component is registered without its modalities), a test below fails.
EXPECTED = {
    "models": {"small_cnn": {"image"}, "mlp": {"tabular", "vector"}},
    "generators": {"pca_gmm": {"image", "tabular", "vector"}, "diffusion": {"image"}, "sd_lora": {"image"},
                   "dp_gan": {"image", "tabular", "vector"}, "ctgan": {"tabular"}, "gaussian_copula": {"tabular"},
                   "toy_pockets_oracle": {"vector"}},
    # metrics: the synthetic-data quality and text ones, whose modalities differ metric by metric
    "metrics": {"fid": {"image"}, "kid": {"image"}, "coverage": {"image", "text"}, "density": {"image", "text"},
                "one_nn_accuracy": {"image", "text"}, "detection_auc": {"tabular", "text"},
                "bertscore": {"text"}, "bleu": {"text"}, "self_bleu": {"text"}, "exact_match": {"text"},
                "chance_accuracy": {"image", "tabular", "vector", "text"}},
}


def base_suite(dataset: str) -> dict:
    """The smallest valid suite on `dataset`, with a model of its modality."""
    modality = DATASETS.caps(dataset).modality
    return {"name": "combo", "version": 1, "primary_metric": "accuracy", "datasets": [dataset], "budgets": [5],
            "val_per_class": 5, "model": {"name": "small_cnn" if modality == "image" else "mlp"},
            "strategies": ["real_only"], "metrics": ["accuracy"], "seeds": [0]}


def validates(raw: dict) -> tuple[bool, str]:
    try:
        expand_cells(validate_suite(copy.deepcopy(raw), source="test"))
        return True, ""
    except BenchError as exc:
        return False, str(exc)


BUILTIN_DATASETS = ["adult", "cifar10", "pneumoniamnist", "taiwan_credit", "toy_pockets", "transactions", "utkface"]


@pytest.mark.parametrize("dataset", BUILTIN_DATASETS)
@pytest.mark.parametrize("model", sorted(EXPECTED["models"]))
def test_validate_refuses_a_model_of_another_modality(dataset, model):
    raw = {**base_suite(dataset), "model": {"name": model}}
    ok, message = validates(raw)
    assert ok == (DATASETS.caps(dataset).modality in EXPECTED["models"][model]), message
    if not ok:
        assert model in message and dataset in message and "\n" not in message


@pytest.mark.parametrize("dataset", BUILTIN_DATASETS)
@pytest.mark.parametrize("generator", sorted(EXPECTED["generators"]))
def test_validate_refuses_a_generator_of_another_modality(dataset, generator):
    raw = {**base_suite(dataset), "strategies": ["real_only", "random_synthetic"],
           "synthetic": {"generator": {"name": generator}, "budget_per_class": 5}}
    ok, message = validates(raw)
    expected = DATASETS.caps(dataset).modality in EXPECTED["generators"][generator]
    if generator == "toy_pockets_oracle":  # the true distribution of one generated problem
        expected = dataset == "toy_pockets"
    assert ok == expected, message
    if not ok:
        assert generator in message


@pytest.mark.parametrize("dataset", BUILTIN_DATASETS)
@pytest.mark.parametrize("metric", METRICS.names())
def test_validate_refuses_a_metric_of_another_modality(dataset, metric):
    raw = {**base_suite(dataset), "metrics": ["accuracy", metric] if metric != "accuracy" else ["accuracy"]}
    ok, message = validates(raw)
    assert ok == (DATASETS.caps(dataset).modality in METRICS.caps(metric).modalities), message


@pytest.mark.parametrize("dataset", BUILTIN_DATASETS)
@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_validate_checks_every_strategy_on_every_dataset(dataset, strategy):
    modality = DATASETS.caps(dataset).modality
    generator = "diffusion" if modality == "image" else "ctgan" if modality == "tabular" else "pca_gmm"
    raw = {**base_suite(dataset), "strategies": [strategy],
           "synthetic": {"generator": {"name": generator}, "budget_per_class": 5}}
    ok, message = validates(raw)
    caps = STRATEGIES.caps(strategy)
    expected = modality in caps.modalities and (
        caps.own_generator is None or modality in GENERATORS.caps(caps.own_generator).modalities)
    assert ok == expected, message


def test_the_issue_examples_are_refused_with_one_line():
    table = base_suite("adult")
    ok, message = validates({**table, "strategies": ["random_synthetic"],
                             "synthetic": {"generator": {"name": "diffusion"}, "budget_per_class": 5}})
    assert not ok and message == ("data set 'adult' is tabular, but the suite's generator 'diffusion' "
                                  "(used by strategy 'random_synthetic') makes image data")
    ok, message = validates({**table, "model": {"name": "small_cnn"}})
    assert not ok and message == "data set 'adult' is tabular, but model 'small_cnn' takes image data"


def test_a_strategy_hook_refuses_what_it_cannot_do():
    raw = {**base_suite("cifar10"), "strategies": [{"name": "active_synthesis", "params": {"targeting": "attributes"}}],
           "synthetic": {"generator": {"name": "diffusion"}, "budget_per_class": 5}}
    ok, message = validates(raw)
    assert not ok and "active_synthesis" in message and "table" in message


@pytest.mark.parametrize("change, words", [
    ({"budgets": [4996]}, "budget 4996 per class plus val_per_class 5 exceeds the 5000"),
    ({"val_per_class": 6000}, "exceeds the 5000 training examples"),
    ({"test_per_class": 1001}, "test_per_class 1001 exceeds the 1000 test examples"),
])
def test_validate_refuses_budgets_larger_than_the_data(change, words):
    ok, message = validates({**base_suite("cifar10"), **change})
    assert not ok and words in message


def test_budget_check_uses_the_smallest_class():
    assert validates({**base_suite("transactions"), "budgets": [400]})[0]  # 407 frauds in the training split
    ok, message = validates({**base_suite("transactions"), "budgets": [403]})
    assert not ok and "407" in message


@pytest.mark.parametrize("params, words", [
    ({"width": "wide"}, "model 'small_cnn': parameter width='wide': Input should be a valid integer"),
    ({"widht": 8}, "model 'small_cnn': unknown parameter widht; known: width"),
    ({"dropout": [0.5]}, "model 'small_cnn': parameter dropout=[0.5]"),
])
def test_badly_typed_parameters_are_one_line_errors(params, words):
    ok, message = validates({**base_suite("cifar10"), "model": {"name": "small_cnn", "params": params}})
    assert not ok and message.startswith(words) and "\n" not in message


def test_build_converts_what_pydantic_can_and_keeps_what_the_suite_wrote():
    spec = MODELS.build("small_cnn", {"width": "16", "dropout": 0})
    assert spec.width == 16 and spec.dropout == 0 and isinstance(spec.dropout, int)  # 0 == 0.0: kept as written
    gen = GENERATORS.build("diffusion", {"block_out_channels": [8, 16]})
    assert gen.block_out_channels == (8, 16) and isinstance(gen.block_out_channels, tuple)  # the annotated type


def test_registration_checks_capabilities_and_contract():
    reg = Registry("generator", caps=type(GENERATORS.caps("pca_gmm")), contract=("fit", "sample"))

    @dataclass
    class Fine:
        def fit(self, real, info, seed):
            return self

        def sample(self, n, conditions, rng):
            return None

    reg.add("fine", Fine, modalities=("image",))
    assert reg.caps("fine").version == 1 and reg.caps("fine").modalities == ("image",)
    with pytest.raises(ValueError, match="bad capabilities.*modalites"):
        reg.add("typo", Fine, modalites=("image",))
    with pytest.raises(ValueError, match="must be a non-empty tuple"):
        reg.add("nowhere", Fine, modalities=("pictures",))

    @dataclass
    class NoSample:
        def fit(self, real, info, seed):
            return self

    with pytest.raises(ValueError, match="lacks sample of the generator contract"):
        reg.add("no_sample", NoSample, modalities=("image",))


def test_every_builtin_entry_declares_known_modalities():
    for registry in (MODELS, GENERATORS, STRATEGIES, METRICS):
        for name in registry.names():
            assert set(registry.caps(name).modalities) <= set(MODALITIES), name
    for name in DATASETS.names():
        assert DATASETS.caps(name).modality in MODALITIES
    for name, expected in EXPECTED["models"].items():
        assert set(MODELS.caps(name).modalities) == expected, name
    for name, expected in EXPECTED["generators"].items():
        assert set(GENERATORS.caps(name).modalities) == expected, name
    for name, expected in EXPECTED["metrics"].items():
        assert set(METRICS.caps(name).modalities) == expected, name


@dataclass
class InfoRecorder:
    """Records the DatasetInfo its fit receives."""

    def fit(self, real, info, seed):
        self.info_ = info
        return self

    def sample(self, n, conditions, rng):
        raise NotImplementedError


def test_generators_receive_the_dataset_info_explicitly(tiny_task, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(GENERATORS._entries, "info_recorder", InfoRecorder)  # for this test only
    monkeypatch.setitem(GENERATORS._meta, "info_recorder", type(GENERATORS.caps("pca_gmm"))(modalities=("image",)))
    gen, _ = fitted_generator(tiny_task, "info_recorder", {})
    assert gen.info_ == DatasetInfo(name="tiny", modality="image", classes=("r", "g", "b"), schema=None)
    assert gen.info_.num_classes == 3


def test_dataset_info_of_a_table_carries_its_schema():
    from bench.cells import load_dataset
    from bench.config import NamedSpec

    data = load_dataset(NamedSpec(name="transactions"), None)
    info = DatasetInfo.of(data)
    assert info.schema is data.schema and info.classes == tuple(data.classes) and info.modality == "tabular"
