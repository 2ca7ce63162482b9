"""Regression tests for the protocol defects of issue 10: round 0 competes in the active loop's round
selection (1); model selection cannot return a barely trained, near-constant network and a degenerate
model is flagged in the result (2); random_synthetic differs from active_synthesis only in where the
seeds come from (3); the budget forms "all" and "P%" (4)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.api import DatasetSplits, Split, StrategyResult
from bench.cells import expand_cells
from bench.cli import main
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe, check_budget, load_suite
from bench.errors import BenchError
from bench.method import active as active_module
from bench.method.active import ActiveSynthesis
from bench.registry import GENERATORS, STRATEGIES
from bench.results import budget_segment, iter_results, validate_result
from bench.task import Task, split_budget

# --- 1. round 0 competes --------------------------------------------------------------------------------


def fake_validation(monkeypatch, scores: dict[int, tuple[float, float]]) -> None:
    """Make the loop's per-round log report the given (val_accuracy, val_loss) for each round."""
    original = ActiveSynthesis._round_log

    def logged(self, task, r, *args, **kwargs):
        record = original(self, task, r, *args, **kwargs)
        record["val_accuracy"], record["val_loss"] = scores[r]
        return record

    monkeypatch.setattr(ActiveSynthesis, "_round_log", logged)


def test_round_zero_is_returned_when_it_is_the_best_round(tiny_task, monkeypatch):
    fitted: dict[int, list] = {}
    original_fit = ActiveSynthesis.fit_round

    def fit_round(self, task, round_, **options):
        fitted[round_] = original_fit(self, task, round_, **options)
        return fitted[round_]

    monkeypatch.setattr(ActiveSynthesis, "fit_round", fit_round)
    # f_0 has both the lowest validation loss and the highest accuracy: synthetic data only hurt.
    fake_validation(monkeypatch, {0: (0.9, 0.3), 1: (0.6, 0.9), 2: (0.7, 0.8), 3: (0.5, 1.2)})
    result = STRATEGIES.build("active_synthesis", {"passes": 3, "max_rounds": 3, "round_epochs": 2}).run(tiny_task)
    assert [r["round"] for r in result.log["rounds"]] == [0, 1, 2, 3]
    assert result.log["returned_round"] == 0
    assert result.classifier is fitted[0][0]  # the real-only model itself
    assert "rounds 0, 1, 2, 3" in result.log["returned_because"]
    assert result.log["synthetic_examples"] == 15  # the synthetic data was still made and is reported


def test_the_best_later_round_and_the_last_round_are_returned_as_asked(tiny_task, monkeypatch):
    fake_validation(monkeypatch, {0: (0.6, 0.7), 1: (0.8, 0.5), 2: (0.8, 0.4), 3: (0.7, 0.3)})
    params = {"passes": 3, "max_rounds": 3, "round_epochs": 2}
    # Highest accuracy, ties broken by the lower loss: round 2 (round 3 has the lowest loss).
    assert STRATEGIES.build("active_synthesis", params).run(tiny_task).log["returned_round"] == 2
    tiny_task.recipe = tiny_task.recipe.model_copy(update={"select_metric": "loss"})
    assert STRATEGIES.build("active_synthesis", params).run(tiny_task).log["returned_round"] == 3
    log = STRATEGIES.build("active_synthesis", {**params, "select_round_on_val": False}).run(tiny_task).log
    assert log["returned_round"] == 3 and "last" in log["returned_because"]


# --- 2. selection criterion and degenerate models --------------------------------------------------------


def test_selection_does_not_return_a_near_constant_first_epoch(one_thread, image_maker):
    # Two classes; 30% of the validation labels are wrong. The network soon becomes confident, so every
    # wrong label costs it more than a constant 50/50 guess: the validation loss is lowest at epoch 0,
    # where the network predicts one class everywhere (accuracy 0.5), although later epochs reach 0.7.
    data = DatasetSplits(name="tiny2", modality="image", classes=["r", "g"],
                         train=image_maker(40, classes=2, seed=0), test=image_maker(20, classes=2, seed=1))
    task = Task.build(data, budget=10, val_per_class=20, seed=0,
                      model=NamedSpec(name="small_cnn", params={"width": 4, "augment": False}),
                      recipe=TrainRecipe(epochs=20, batch_size=64, lr=0.05))
    y = task.val.y.copy()
    wrong = np.arange(len(y)) % 10 < 3
    y[wrong] = 1 - y[wrong]
    task.val = Split(task.val.x, y)
    clf = task.fit()
    losses = [h["val_loss"] for h in clf.history]
    accuracy = [h["val_accuracy"] for h in clf.history]
    assert int(np.argmin(losses)) == 0 and accuracy[0] == pytest.approx(0.5)  # the trap is there
    assert clf.best_epoch >= int(task.recipe.select_from * task.recipe.epochs) and clf.best_epoch > 0
    assert accuracy[clf.best_epoch] == pytest.approx(max(accuracy[2:]))
    assert len(np.unique(clf.predict_proba(task.val.x).argmax(1))) == 2  # not a constant predictor
    # The old criterion is still available, and it falls into the trap.
    old = task.fit(recipe=task.recipe.model_copy(update={"select_metric": "loss", "select_from": 0.0}))
    assert old.best_epoch == 0


@dataclass
class ConstantClassifier:
    num_classes: int
    label: int

    def predict_proba(self, x) -> np.ndarray:
        p = np.full((len(x), self.num_classes), 0.1 / (self.num_classes - 1))
        p[:, self.label] = 0.9
        return p


@dataclass
class ConstantStrategy:
    """Returns a classifier that predicts class 1 everywhere."""

    def run(self, task: Task) -> StrategyResult:
        return StrategyResult(ConstantClassifier(task.num_classes, 1))


@dataclass
class NearestMeanStrategy:
    """A quick real classifier: nearest class mean of the real budget."""

    def run(self, task: Task) -> StrategyResult:
        x, y = np.asarray(task.train.x, dtype=float), task.train.y
        means = np.stack([x[y == c].mean(0) for c in range(task.num_classes)])

        class Nearest:
            def predict_proba(self, q) -> np.ndarray:
                d = ((np.asarray(q, dtype=float)[:, None, :] - means[None]) ** 2).sum(-1)
                e = np.exp(-(d - d.min(1, keepdims=True)))
                return e / e.sum(1, keepdims=True)

        return StrategyResult(Nearest())


@pytest.fixture
def test_strategies():
    names = {"constant_predictor": ConstantStrategy, "nearest_mean": NearestMeanStrategy}
    for name, cls in names.items():
        STRATEGIES.register(name, kind="baseline")(cls)
    yield
    for name in names:
        STRATEGIES._entries.pop(name, None)
        STRATEGIES._meta.pop(name, None)


TOY_SUITE = """
name: protocol
version: 1
primary_metric: accuracy
datasets: [{{name: toy_pockets, params: {{train_per_class: 300, test_per_class: 100}}}}]
budgets: {budgets}
val_per_class: 20
model: {{name: mlp, params: {{hidden: [8]}}}}
train: {{epochs: 2, batch_size: 256}}
strategies: {strategies}
metrics: [accuracy, balanced_accuracy]
seeds: [0]
"""


def test_a_constant_classifier_is_flagged_degenerate_in_its_result(tmp_path, test_strategies):
    suite = tmp_path / "s.yaml"
    suite.write_text(TOY_SUITE.format(budgets="[20]", strategies="[constant_predictor, nearest_mean]"))
    out = tmp_path / "out"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet"]) == 0
    got = {r["cell"]["strategy"]: r for _, r in iter_results(out)}
    constant, fine = got["constant_predictor"], got["nearest_mean"]
    assert constant["degenerate"] is True and constant["predicted_classes"] == 1
    assert constant["metrics"]["balanced_accuracy"]["value"] == pytest.approx(0.5)
    assert fine["degenerate"] is False and fine["predicted_classes"] == 2
    for r in (constant, fine):
        validate_result(r)
    old = {k: v for k, v in fine.items() if k not in ("degenerate", "predicted_classes")}
    validate_result(old)  # results written before the flag existed still validate


# --- 3. random_synthetic is the active loop without targeting ---------------------------------------------


def record_loop(monkeypatch, generator: str) -> dict[str, list]:
    """Record, per run, what the loop estimates on the pool, the labels it draws (and from which
    probabilities) and the conditions the generator is sampled with."""
    seen: dict[str, list] = {"estimates": [], "draws": [], "conditions": []}
    estimate, draw = ActiveSynthesis.estimate, active_module.draw_labels
    cls = GENERATORS.get(generator)
    sample = cls.sample

    def spy_estimate(self, task, models, x, round_):
        u = estimate(self, task, models, x, round_)
        seen["estimates"].append((np.asarray(x), u))
        return u

    def spy_draw(probs, mode, rng):
        labels = draw(probs, mode, rng)
        seen["draws"].append((probs, labels))
        return labels

    def spy_sample(self, n, conditions, rng):
        seen["conditions"].append(conditions)
        return sample(self, n, conditions, rng)

    monkeypatch.setattr(ActiveSynthesis, "estimate", spy_estimate)
    monkeypatch.setattr(active_module, "draw_labels", spy_draw)
    monkeypatch.setattr(cls, "sample", spy_sample)
    return seen


def seed_rows(pool_x: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The pool row of each seed example."""
    flat = pool_x.reshape(len(pool_x), -1)
    return np.array([int(np.flatnonzero((flat == s.reshape(-1)).all(1))[0]) for s in seeds])


def test_random_synthetic_differs_from_active_synthesis_only_in_where_seeds_come_from(tiny_task, monkeypatch):
    params = {"passes": 5, "max_rounds": 3, "patience": 10, "round_epochs": 2, "tau": 0.8, "strength": 0.3,
              "pool_size": None}
    runs = {}
    for name in ("active_synthesis", "random_synthetic"):
        seen = record_loop(monkeypatch, "pca_gmm")
        result = STRATEGIES.build(name, params).run(tiny_task)
        runs[name] = (seen, result)
        monkeypatch.undo()
    (a_seen, a), (r_seen, r) = runs["active_synthesis"], runs["random_synthetic"]
    # The same parameters: random_synthetic takes active_synthesis's, with guidance off.
    a_params, r_params = (dataclasses.asdict(STRATEGIES.build(n, params)) for n in runs)
    assert {k for k in a_params if a_params[k] != r_params[k]} == {"guidance"}
    # The same generator, count, rounds and strength.
    assert a.log["generator"]["key"] == r.log["generator"]["key"]
    assert a.log["synthetic_examples"] == r.log["synthetic_examples"] == 15
    assert [len(c.labels) for c in a_seen["conditions"]] == [len(c.labels) for c in r_seen["conditions"]] == [5, 5, 5]
    assert {c.strength for c in a_seen["conditions"] + r_seen["conditions"]} == {0.3}
    assert a.log["seeds_from"] == "U_tau" and r.log["seeds_from"] == "pool"
    pool_x = np.asarray(tiny_task.pool.x)
    outside = 0
    for name, seen in (("active", a_seen), ("random", r_seen)):
        pool_estimates = [u for x, u in seen["estimates"] if len(x) == len(pool_x)]
        assert len(pool_estimates) == len(seen["conditions"]) == len(seen["draws"])
        threshold = float(np.quantile(pool_estimates[0].score("variance+entropy"), 0.8))
        for u, (probs, labels), cond in zip(pool_estimates, seen["draws"], seen["conditions"]):
            rows = seed_rows(pool_x, np.asarray(cond.seeds))
            # The labelling rule: each seed's label is drawn from the model's predictive distribution on it.
            np.testing.assert_array_equal(probs, u.mean_probs[rows])
            np.testing.assert_array_equal(cond.labels, labels)
            in_region = u.score("variance+entropy")[rows] >= threshold
            if name == "active":
                assert in_region.all()  # seeds from U_tau
            else:
                outside += int((~in_region).sum())
    assert outside > 0  # seeds from the whole pool


def test_random_synthetic_on_tables_conditions_by_the_methods_rule_without_optimising(monkeypatch, one_thread):
    """The control of `bo` never optimises its conditions; it conditions its uniformly drawn seed rows by the
    method's attribute rule (the values over-represented in U_tau that each seed carries), so the values it
    conditions on occur at their pool rates (tests/test_controls.py checks the rule is the method's)."""
    from bench.table import Column, TableSchema

    schema = TableSchema((Column("age", "numeric", integer=True, low=18, high=90),
                          Column("job", "categorical", ("clerk", "farmer", "nurse", "pilot"))), {})
    rng = np.random.default_rng(0)

    def rows(n: int) -> Split:  # positive: pilots and anyone over 60
        age, job = rng.integers(18, 91, n), rng.integers(0, 4, n)
        return Split(np.c_[age, job].astype(np.float64), ((job == 3) | (age > 60)).astype(np.int64))

    table = DatasetSplits(name="toy_table", modality="tabular", classes=["no", "yes"], train=rows(600),
                          test=rows(200), schema=schema)
    task = Task.build(table, budget=30, val_per_class=20, seed=0,
                      model=NamedSpec(name="mlp", params={"hidden": [16], "dropout": 0.2}),
                      recipe=TrainRecipe(epochs=5, batch_size=32, lr=3e-3),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="gaussian_copula"), budget_per_class=10,
                                              mix_ratio=0.5))

    def no_bo(*args, **kwargs):
        raise AssertionError("the control must not optimise its conditions")

    monkeypatch.setattr(active_module, "bo_conditions", no_bo)
    params = {"uncertainty": "ensemble", "members": 2, "max_rounds": 2, "round_epochs": 2, "targeting": "bo"}
    seen = record_loop(monkeypatch, "gaussian_copula")
    result = STRATEGIES.build("random_synthetic", params).run(task)
    assert result.log["synthetic_examples"] == 20 and len(seen["conditions"]) == 2
    for cond, (_, labels) in zip(seen["conditions"], seen["draws"]):
        assert set(cond.attributes) <= {"job"}  # categorical columns only, one condition per row at most
        for values in cond.attributes.values():
            codes = values[~np.isnan(values)]
            assert np.isin(codes, [0, 1, 2, 3]).all()
        np.testing.assert_array_equal(cond.labels, labels)  # the drawn labels, not optimised ones
    assert all(r["targeting"]["kind"] == "attributes" for r in result.log["rounds"][1:])


def test_prior_synthetic_keeps_the_one_shot_class_prior_baseline(tiny_task):
    result = STRATEGIES.build("prior_synthetic", {}).run(tiny_task)
    assert result.log["synthetic_examples"] == 15 and len(result.synthetic.y) == 15
    assert "rounds" not in result.log
    with pytest.raises(BenchError, match="random_synthetic is active_synthesis without guidance"):
        STRATEGIES.build("random_synthetic", {"guidance": True})


# --- 4. budget forms ---------------------------------------------------------------------------------------


def test_budget_forms_are_parsed_and_bad_ones_rejected():
    forms = [check_budget(b) for b in (100, "all", "ALL", "10%", "2.50%", "100%")]
    assert forms == [100, "all", "all", "10%", "2.5%", "all"]
    for bad in (0, -3, "0%", "150%", "ten", "10", 2.5, True, None, "10 percent"):
        with pytest.raises(ValueError):
            check_budget(bad)
    assert [budget_segment(b) for b in (100, "all", "10%", "2.5%")] == ["n100", "all", "pct10", "pct2.5"]


def test_all_and_percent_budgets_keep_the_natural_class_balance():
    y = np.repeat([0, 1, 2], [500, 200, 60])
    tr, va, pool = split_budget(y, "all", val_per_class=10, seed=0)
    assert np.bincount(y[va]).tolist() == [10, 10, 10]
    assert np.bincount(y[tr]).tolist() == [490, 190, 50] and len(pool) == 0
    tr, va, pool = split_budget(y, "10%", val_per_class=10, seed=0)
    assert np.bincount(y[va]).tolist() == [10, 10, 10]
    assert np.bincount(y[tr]).tolist() == [49, 19, 5]  # 10% of each class's remaining examples, rounded
    assert len(tr) + len(va) + len(pool) == len(y)
    assert not set(tr) & set(va) and not set(tr) & set(pool) and not set(va) & set(pool)
    # The validation split is the same for every budget form of a seed: it is carved first.
    assert split_budget(y, "all", 10, seed=0)[1].tolist() == va.tolist()
    assert split_budget(y, "10%", 10, seed=1)[0].tolist() != tr.tolist()
    with pytest.raises(BenchError, match="leaves class 2 no training examples"):
        split_budget(y, "0.5%", val_per_class=10, seed=0)


def write_suite(tmp_path: Path, budgets: str, strategies: str = "[real_only]") -> Path:
    suite = tmp_path / "s.yaml"
    suite.write_text(TOY_SUITE.format(budgets=budgets, strategies=strategies))
    return suite


def test_int_budgets_keep_their_config_record_and_path(tmp_path):
    cells = expand_cells(load_suite(str(write_suite(tmp_path, "[20, all, 10%]"))))
    assert [c.budget for c in cells] == [20, "all", "10%"]
    assert cells[0].config["budget"] == 20 and isinstance(cells[0].config["budget"], int)
    assert [c.config["budget"] for c in cells[1:]] == ["all", "10%"]


def test_budget_forms_run_end_to_end(tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--suite", str(write_suite(tmp_path, "[20, all, 10%]")), "--out", str(out), "--quiet"]) == 0
    got = {p.relative_to(out).parts[-3]: r for p, r in iter_results(out)}
    assert sorted(got) == ["all", "n20", "pct10"]
    assert got["all"]["strategy_log"]["real_examples"] == 2 * (300 - 20)
    assert got["pct10"]["strategy_log"]["real_examples"] == 2 * 28
    assert got["n20"]["strategy_log"]["real_examples"] == 40
    assert got["all"]["cell"]["budget"] == "all"
    lb = tmp_path / "LEADERBOARD.md"
    assert main(["leaderboard", "--results", str(out), "--output", str(lb)]) == 0
    assert "all training rows" in lb.read_text() and "10% of the training rows" in lb.read_text()


@pytest.mark.parametrize("budgets, message", [
    ("[ten]", "budgets.0: Value error, budget 'ten' is not one of"),
    ("[0]", "budgets.0: Value error, a budget of 0 examples per class"),
    ("['150%']", "budgets.0: Value error, budget '150%': a percentage must lie in (0, 100]"),
])
def test_bad_budget_forms_are_one_line_errors(tmp_path, capsys, budgets, message):
    assert main(["run", "--suite", str(write_suite(tmp_path, budgets)), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_mlp_reaches_scikit_learn_accuracy_on_adult_with_every_training_row(tmp_path):
    """About a minute on 2 cores: the adult-full suite's first seed against scikit-learn on the same rows."""
    from bench.benchmarks.references.adult import harness_results, references

    assert main(["run", "--suite", "adult-full", "--seeds", "0", "--out", str(tmp_path), "--quiet"]) == 0
    (mlp,) = harness_results(tmp_path)
    assert mlp["train_rows"] == 30162 - 1000
    logistic = references(seeds=[0])["logistic_regression"][0]
    assert mlp["accuracy"] >= 0.84 and mlp["accuracy"] >= logistic["accuracy"] - 0.01, (mlp, logistic)
