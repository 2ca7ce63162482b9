"""bench.api is the one contract module: it imports no other module of the harness (so that every module
may import it without a cycle), the registry's contract checks are the methods its Protocols state, the
task the runner builds provides everything TaskView promises, and the old import paths of its types,
kept for plug-ins, name the very same types."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest

from bench import api
from bench.api import CONTRACTS, PROTOCOLS, TaskView, contract_methods
from bench.registry import Registry


def test_the_contract_module_imports_no_module_of_the_harness():
    code = ("import sys, bench.api; "
            "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.'))); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert set(eval(out[0])) <= {"bench", "bench.api", "bench.errors"}
    assert out[1] == "False"  # torch only for annotations


def test_the_contracts_are_the_methods_the_protocols_state():
    assert CONTRACTS == {kind: contract_methods(p) for kind, p in PROTOCOLS.items()}
    assert CONTRACTS["dataset"] == ("load",)
    assert CONTRACTS["model"] == ("build", "to_tensor", "prepare_batch")
    assert CONTRACTS["generator"] == ("fit", "sample")
    assert CONTRACTS["strategy"] == ("run",)
    assert CONTRACTS["metric"] == ("__call__",)  # a metric is a function


def test_a_method_added_to_a_protocol_is_checked_at_registration():
    class Widget(typing.Protocol):
        def spin(self) -> None: ...

        def _helper(self) -> None: ...

    registry = Registry("widget", contract=contract_methods(Widget))
    with pytest.raises(ValueError, match="lacks spin of the widget contract"):
        registry.add("bare", object())

    class Spinner:
        def spin(self) -> None: ...

    registry.add("spinner", Spinner)
    assert "spinner" in registry._entries


def test_a_metric_must_be_callable():
    metrics = Registry("metric", caps=api.MetricCaps, contract=CONTRACTS["metric"])
    with pytest.raises(ValueError, match="lacks __call__"):
        metrics.add("constant", 0.5, higher_is_better=True)
    metrics.add("fn", lambda ctx: 0.5, higher_is_better=True)


def view_members() -> set[str]:
    own = set(vars(TaskView).get("__annotations__", {})) | {
        name for name, value in vars(TaskView).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    return own


def test_the_task_provides_what_the_task_view_promises(tiny_task):
    assert view_members() >= {"data", "seed", "train", "val", "pool", "fit", "num_classes", "info"}
    assert "test" not in view_members()  # strategies never see the test split (tests/test_task_view.py)
    for task in (tiny_task, tiny_task.for_strategy(api.StrategyCaps(kind="baseline"))):
        assert isinstance(task, TaskView)
        missing = [m for m in sorted(view_members()) if not hasattr(task, m)]
        assert missing == []
        assert callable(task.fit) and task.num_classes == 3 and task.info.num_classes == 3


def test_each_contract_type_is_stated_once_and_the_old_strategy_path_still_names_it():
    """bench.strategy stays for plug-ins written against `from bench.strategy import StrategyResult`;
    no other core module holds a second copy of a contract type."""
    from bench import data, evaluation, generator, strategy

    assert strategy.StrategyResult is api.StrategyResult
    assert not hasattr(data, "Split") and not hasattr(data, "DatasetSplits")
    assert not hasattr(generator, "Conditions")
    assert evaluation.EvalContext is api.EvalContext  # imported for its own signature, not a copy


def test_the_log_types_state_every_key_with_a_type():
    assert {"rounds", "returned_round", "synthetic_examples", "real_examples", "mix_ratio"} <= set(
        api.StrategyLog.__annotations__)
    assert {"round", "uncertain", "mean_score_uncertain", "mean_score_pool", "synthetic_total",
            "val_accuracy"} <= set(api.RoundLog.__annotations__)
    assert api.StrategyLog.__total__ is False and api.RoundLog.__total__ is False
    assert [f.name for f in dataclasses.fields(api.StrategyResult)] == ["classifier", "synthetic", "log"]
