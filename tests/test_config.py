from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import config_hash, deep_merge, load_suite
from bench.errors import BenchError
from bench.runner import expand_cells

SUITE = """
name: t
version: 1
primary_metric: accuracy
datasets: [cifar10]
budgets: [5]
val_per_class: 2
model: {name: small_cnn, params: {width: 4}}
train: {epochs: 1}
strategies: [real_only]
metrics: [accuracy]
seeds: [0, 1]
presets:
  gpu: {budgets: [50, 100], train: {epochs: 9}}
"""


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return str(p)


def test_preset_overrides_merge_onto_the_defaults(tmp_path):
    cpu = load_suite(write(tmp_path, SUITE))
    gpu = load_suite(write(tmp_path, SUITE), preset="gpu")
    assert cpu.budgets == [5] and cpu.train.epochs == 1 and cpu.preset == "cpu"
    assert gpu.budgets == [50, 100] and gpu.train.epochs == 9 and gpu.preset == "gpu"
    assert gpu.train.lr == cpu.train.lr == 3e-4  # untouched fields keep their value


def test_recipe_defaults_are_the_plans():
    s = load_suite("smoke")
    assert s.train.optimizer == "adam"
    assert s.model.params["dropout"] == 0.5


def test_seeds_override(tmp_path):
    assert load_suite(write(tmp_path, SUITE), seeds=[7]).seeds == [7]


def test_deep_merge_replaces_lists_and_merges_mappings():
    assert deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}, "d": 1}


def test_deep_merge_replaces_a_mapping_that_names_another_component():
    base = {"generator": {"name": "diffusion", "params": {"train_steps": 600}}}
    same = deep_merge(base, {"generator": {"params": {"batch_size": 8}}})
    assert same["generator"] == {"name": "diffusion", "params": {"train_steps": 600, "batch_size": 8}}
    other = deep_merge(base, {"generator": {"name": "sd_lora", "params": {"rank": 4}}})
    assert other["generator"] == {"name": "sd_lora", "params": {"rank": 4}}  # no diffusion parameters leak in


def test_model_path_goes_to_a_generator_that_loads_weights(tmp_path):
    suite = load_suite("cifar10", preset="gpu-sd", model_path=str(tmp_path))
    assert suite.synthetic.generator.name == "sd_lora"
    assert suite.synthetic.generator.params["model_path"] == str(tmp_path)
    assert suite.synthetic.generator.params["rank"] == 16  # the preset's own parameters stay
    assert suite.budgets == [100, 500, 1000]  # the gpu preset's settings come with it (YAML merge key)
    active = [s for s in suite.strategies if s.name == "active_synthesis"][0]
    assert "{confuser}" in active.params["prompt_template"]  # uncertainty-conditioned prompts
    with pytest.raises(BenchError, match="its generator diffusion loads no model folder"):
        load_suite("cifar10", model_path=str(tmp_path))


@pytest.mark.parametrize("edit,message", [
    (("budgets: [5]", "budgets: [-5]"), "budgets.0: Value error, a budget of -5 examples per class: it must be at least 1"),
    (("val_per_class: 2", "val_per_class: two"), "val_per_class: Input should be a valid integer"),
    (("seeds: [0, 1]", "seeds: []"), "seeds"),
    (("version: 1", "version: 1\nbudget: 3"), "budget: Extra inputs are not permitted"),
    (("strategies: [real_only]", "strategies: [real_only, real_only]"), "strategies must be unique, repeated: real_only"),
])
def test_invalid_suites_are_one_line_errors(tmp_path, edit, message):
    with pytest.raises(BenchError) as exc:
        load_suite(write(tmp_path, SUITE.replace(*edit)))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_preset(tmp_path):
    with pytest.raises(BenchError, match="no preset 'tpu'; known: cpu, gpu"):
        load_suite(write(tmp_path, SUITE), preset="tpu")


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(BenchError, match=r"malformed YAML in .*suite.yaml at line \d+"):
        load_suite(write(tmp_path, SUITE + "\nmetrics: [accuracy\n"))


def test_cells_cover_the_grid_and_hashes_track_the_config(tmp_path):
    cells = expand_cells(load_suite(write(tmp_path, SUITE), preset="gpu"))
    assert [(c.budget, c.seed) for c in cells] == [(50, 0), (50, 1), (100, 0), (100, 1)]
    assert len({c.hash for c in cells}) == 4
    # The model's defaults are resolved into the record, so a default that changes changes the hash.
    assert cells[0].config["model"]["params"] == {"width": 4, "dropout": 0.5, "augment": True, "crop_pad": 4}
    again = expand_cells(load_suite(write(tmp_path, SUITE), preset="gpu"))
    assert [c.hash for c in again] == [c.hash for c in cells]
    changed = expand_cells(load_suite(write(tmp_path, SUITE.replace("width: 4", "width: 8")), preset="gpu"))
    assert changed[0].hash != cells[0].hash


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_a_metric_twice_needs_ids_and_results_are_keyed_by_them(tmp_path):
    text = SUITE.replace("metrics: [accuracy]", "metrics: [accuracy, {name: worst_group_accuracy, params: {attribute: a}},\n"
                         "  {name: worst_group_accuracy, params: {attribute: b}}]")
    with pytest.raises(BenchError, match="metrics must be unique, repeated: worst_group_accuracy"):
        load_suite(write(tmp_path, text))
    text = text.replace("attribute: b}", "attribute: b}, id: worst_b")
    suite = load_suite(write(tmp_path, text))
    assert suite.metric_keys == ["accuracy", "worst_group_accuracy", "worst_b"]
    assert suite.metric_record()[0] == "accuracy"  # a bare name stays a bare name: old config hashes hold
    assert suite.metric_record()[1] == {"name": "worst_group_accuracy", "params": {"attribute": "a"}}
    assert suite.metric_record()[2]["id"] == "worst_b"
