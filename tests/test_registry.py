from __future__ import annotations

import pytest

from bench.errors import BenchError
from bench.registry import DATASETS, METRICS, MODELS, STRATEGIES, SUITES, Registry


def test_register_get_and_meta():
    reg: Registry = Registry("widget")

    @reg.register("alpha", colour="red")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert reg.meta("alpha") == {"colour": "red"}
    assert "alpha" in reg and reg.names() == ["alpha"]


def test_duplicate_name_is_an_error():
    reg: Registry = Registry("widget")
    reg.add("alpha", object())
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha", object())


def test_unknown_name_lists_known_and_suggests():
    reg: Registry = Registry("widget")
    for name in ("real_only", "random_synthetic", "smote"):
        reg.add(name, object())
    with pytest.raises(BenchError) as exc:
        reg.get("real_onyl")
    msg = str(exc.value)
    assert "unknown widget 'real_onyl'" in msg
    assert "Did you mean 'real_only'" in msg
    assert "random_synthetic" in msg and "smote" in msg
    assert "\n" not in msg


def test_builtin_entries_are_registered_through_entry_points():
    assert "cifar10" in DATASETS
    assert "small_cnn" in MODELS
    assert "real_only" in STRATEGIES
    assert {"accuracy", "macro_f1", "ece", "nll", "per_class_accuracy"} <= set(METRICS.names())
    assert {"smoke", "cifar10"} <= set(SUITES.names())


def test_every_metric_declares_its_direction_and_modalities():
    for name in METRICS.names():
        meta = METRICS.meta(name)
        assert isinstance(meta.get("higher_is_better"), bool), name
        assert meta.get("modalities"), name
