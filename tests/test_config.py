from __future__ import annotations

from pathlib import Path

import pytest
from tiny_suite import TOY

from bench.cells import expand_cells
from bench.config import MODEL_PATH_KEY, apply_overrides, config_hash, deep_merge, load_suite
from bench.errors import BenchError, SuiteWarning

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


# -- --set KEY=VALUE --------------------------------------------------------------------------------------


def hashes(suite) -> list[str]:
    return [config_hash(c.config) for c in expand_cells(suite)]


def test_overrides_set_values_by_dotted_path_after_the_preset(tmp_path):
    path = write(tmp_path, SUITE)
    suite = load_suite(path, preset="gpu", overrides={"train.epochs": 3, "budgets.1": 200, "model.params.width": 8})
    assert suite.train.epochs == 3 and suite.budgets == [50, 200] and suite.model.params == {"width": 8}
    assert suite.train.lr == 3e-4  # the rest of the preset's recipe stays
    # in order: a later override of one key wins; a new last key is validation's to judge
    assert load_suite(path, overrides=[("train.epochs", 2), ("train.epochs", 4)]).train.epochs == 4
    assert load_suite(path, overrides={"train.lr_schedule": "cosine"}).train.lr_schedule == "cosine"
    assert load_suite(path, overrides={"train": {"epochs": 5}}).train.epochs == 5  # a YAML mapping replaces


def test_overrides_name_list_entries_by_id_name_or_index_and_leave_aliases_alone():
    raw = {"strategies": ["real_only", {"name": "random_synthetic", "params": {"passes": 10}},
                         {"name": "active_synthesis", "id": "as", "params": None}],
           "seeds": [0, 1]}
    shared = raw["strategies"][1]["params"]
    raw["strategies"].append({"name": "active_synthesis", "params": shared})  # a YAML alias: the same object
    out = apply_overrides(raw, {"strategies.random_synthetic.params.passes": 3, "strategies.as.params.rounds": 2,
                                "strategies.real_only.params.x": 1, "seeds.1": 7})
    assert out["strategies"][0] == {"name": "real_only", "params": {"x": 1}}  # a bare name is {name: NAME}
    assert out["strategies"][1]["params"] == {"passes": 3}
    assert out["strategies"][2]["params"] == {"rounds": 2}  # `params: null` or absent: a new mapping
    assert out["strategies"][3]["params"] == {"passes": 10}  # the alias's other user is untouched
    assert out["seeds"] == [0, 7] and raw["seeds"] == [0, 1] and shared == {"passes": 10}  # raw is not changed
    with pytest.raises(BenchError, match="2 entries of strategies are named 'active_synthesis': give the index"):
        apply_overrides({"strategies": [{"name": "active_synthesis"}] * 2}, {"strategies.active_synthesis.id": "x"})


def test_an_override_with_the_files_value_keeps_every_cell_and_hash():
    plain = load_suite("smoke")
    same = load_suite("smoke", overrides={"train.epochs": plain.train.epochs, "seeds.0": plain.seeds[0]})
    assert same == plain and hashes(same) == hashes(plain)
    assert hashes(load_suite("smoke", overrides={"train.epochs": 1})) != hashes(plain)


def test_sd_path_is_a_short_form_of_the_model_path_override(tmp_path):
    flag = load_suite("cifar10", preset="gpu-sd", model_path=str(tmp_path))
    assert flag == load_suite("cifar10", preset="gpu-sd", overrides={MODEL_PATH_KEY: str(tmp_path)})
    assert hashes(flag) == hashes(load_suite("cifar10", preset="gpu-sd", overrides={MODEL_PATH_KEY: str(tmp_path)}))


def test_overrides_refuse_a_path_the_suite_does_not_have(tmp_path):
    path = write(tmp_path, SUITE)
    with pytest.raises(BenchError, match=r"--set trian.epochs: suite 't' \[cpu\] has no 'trian' at the top level"):
        load_suite(path, overrides={"trian.epochs": 3})
    with pytest.raises(BenchError, match="synthetic"):  # the suite has no synthetic section
        load_suite(path, overrides={MODEL_PATH_KEY: "/models/x"})
    with pytest.raises(BenchError, match="train.epoch: Extra inputs are not permitted"):
        load_suite(path, overrides={"train.epoch": 3})


# -- controls (bench.compat) -----------------------------------------------------------------------------

CONTROLLED = SUITE.replace("strategies: [real_only]", """synthetic:
  generator: {name: pca_gmm, params: {components: 4}}
  budget_per_class: 2
strategies:
  - name: random_synthetic
    params: {passes: 10, max_rounds: 2}
  - name: active_synthesis
    params: {passes: PASSES, max_rounds: 2, min_lift: 1.5}""")


def test_a_control_that_differs_in_more_than_the_targeting_is_warned_about(tmp_path, recwarn):
    expand_cells(load_suite(write(tmp_path, CONTROLLED.replace("PASSES", "10"))))  # only min_lift: targeting
    assert not [w for w in recwarn if issubclass(w.category, SuiteWarning)]
    with pytest.warns(SuiteWarning, match="strategy 'active_synthesis' and its control 'random_synthetic' differ in "
                      r"more than the targeting \(passes 5 vs 10\)"):
        expand_cells(load_suite(write(tmp_path, CONTROLLED.replace("PASSES", "5"))))


# ---- The schema refuses what would fail or mean nothing, and changes nothing valid (tiny_suite.TOY). ----


def test_explicit_plain_tags_and_quoted_dates_still_load(tmp_path):
    """Only tags beyond the plain ones are refused (merge keys: tests/test_bad_inputs.py)."""
    text = TOY.replace("name: toy\n", "name: !!str toy\ndescription: '2024-01-01'\n")
    suite = load_suite(write(tmp_path, text.replace("epochs: 1}", "epochs: !!int 1}")))
    assert suite.name == "toy" and suite.description == "2024-01-01" and suite.train.epochs == 1


@pytest.mark.parametrize("budgets, cells", [
    ("[3, '50%', all]", 3),
    ("['5%']", 1),  # 5% of the 10 examples left after validation: 0.5, rounded half up to one per class
    ("['10%', '10.0%']", "must be unique, repeated: 10%"),
    ("['100%', all]", "must be unique, repeated: all"),
    ("[3, 3]", "must be unique, repeated: 3"),
    ("['4.9%']", "no training example .* use at least 5%"),
    ("[11]", "budget 11 per class plus val_per_class 2 exceeds the 12"),
])
def test_budgets_are_unique_after_normalising_and_leave_every_class_an_example(tmp_path, budgets, cells):
    path = write(tmp_path, TOY.replace("budgets: [3]", f"budgets: {budgets}"))
    if isinstance(cells, int):
        assert len(expand_cells(load_suite(path))) == cells
    else:
        with pytest.raises(BenchError, match=cells):
            expand_cells(load_suite(path))


def test_the_bounds_refuse_without_changing_what_a_valid_suite_parses_to(tmp_path):
    suite = load_suite(write(tmp_path, TOY.replace("train: {epochs: 1}", "train: {epochs: 1, lr: 10, weight_decay: 1}")))
    assert suite.train.lr == 10 and isinstance(suite.train.lr, float) and suite.version == 1
    for bad, words in (("lr: 10.5", "less than or equal to 10"), ("lr: .nan", "finite number"),
                       ("weight_decay: 1.5", "less than or equal to 1"), ("batch_size: 1048577", "1048576")):
        with pytest.raises(BenchError, match=words):
            load_suite(write(tmp_path, TOY.replace("train: {epochs: 1}", f"train: {{epochs: 1, {bad}}}")))
