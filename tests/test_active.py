"""Active synthesis on a problem with a known decision boundary (benchmarks/datasets/toy_pockets.py): uncertainty is
highest near the boundary, and synthesis aimed at it reaches a target accuracy with fewer synthetic
examples than random selection through the very same loop."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bench.api import Conditions
from bench.baselines.smote import smote_samples
from bench.benchmarks.datasets.toy_pockets import ToyPocketsOracle
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.generator import fitted_generator
from bench.method.uncertainty import mc_dropout
from bench.registry import DATASETS, GENERATORS, STRATEGIES
from bench.synthesis import mix_weights
from bench.task import Task

TARGET = 0.97  # held-out accuracy; f_0 on 5 examples per class reaches about 0.93
SEEDS = range(6)


@pytest.fixture(scope="module")
def toy():
    return DATASETS.get("toy_pockets")().load()


def toy_task(toy, seed: int, budget_per_class: int = 40) -> Task:
    # 1,000 validation examples per class: the held-out accuracy the loop logs each round.
    return Task.build(toy, budget=5, val_per_class=1000, seed=seed,
                      model=NamedSpec(name="mlp", params={"hidden": [32, 32], "dropout": 0.3}),
                      recipe=TrainRecipe(epochs=100, batch_size=32, lr=1e-2, select_on_val=False),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="toy_pockets_oracle"),
                                              budget_per_class=budget_per_class, mix_ratio=0.5))


def test_uncertainty_is_highest_near_the_boundary(toy, one_thread):
    task = toy_task(toy, seed=0)
    clf = task.fit()
    grid = np.stack(np.meshgrid(np.linspace(-5, 5, 41), np.linspace(-1, 1, 9)), -1).reshape(-1, 2).astype(np.float32)
    score = mc_dropout(clf, grid, passes=100).score()
    near, far = np.abs(grid[:, 0]) < 0.5, np.abs(grid[:, 0]) > 2.5
    assert score[near].mean() > 3 * score[far].mean()


def samples_to_target(rounds: list[dict]) -> float:
    for r in rounds:
        if "val_accuracy" in r and r["val_accuracy"] >= TARGET:
            return r["synthetic_total"]
    return np.inf


def test_targeting_beats_random_selection_through_the_same_loop(toy, one_thread):
    needed = {True: [], False: []}
    for seed in SEEDS:
        task = toy_task(toy, seed)
        for guidance in (True, False):
            strategy = STRATEGIES.get("active_synthesis")(
                guidance=guidance, max_rounds=8, patience=100, pool_size=None, round_epochs=40,
                select_round_on_val=False, kl_weight=0.0, tau=0.9, strength=0.5)
            result = strategy.run(task)
            needed[guidance].append(samples_to_target(result.log["rounds"]))
            assert result.log["synthetic_examples"] == len(result.synthetic.y) <= 80
    reached = {g: sum(np.isfinite(v)) for g, v in needed.items()}
    # Aimed at the uncertain region, synthesis reaches the target in more seeds and with fewer samples.
    assert reached[True] >= reached[False] + 2, needed
    assert np.median(needed[True]) < np.median(needed[False]), needed


def test_loop_logs_every_round_and_stops_when_the_region_stops_shrinking(toy, one_thread):
    task = toy_task(toy, seed=0, budget_per_class=1000)
    result = STRATEGIES.get("active_synthesis")(max_rounds=30, patience=1, round_epochs=10, tau=0.9).run(task)
    rounds = result.log["rounds"]
    assert rounds[0]["round"] == 0 and rounds[0]["synthetic_total"] == 0
    assert result.log["stopped_because"] == "converged" and rounds[-1]["stopped"]
    sizes = [r["uncertain"] for r in rounds[1:]]
    assert sizes[-1] >= sizes[-2]  # patience 1: stopped at the first round without shrinking
    assert all(sizes[i] < sizes[i - 1] for i in range(1, len(sizes) - 1))
    for r in rounds[1:-1]:
        assert {"uncertain", "mean_score_uncertain", "synthetic_total", "val_accuracy", "wall_seconds"} <= set(r)
    per_round = -(-2000 // 30)  # the budget (1,000 per class, 2 classes) spread over max_rounds
    assert len(result.synthetic.y) == rounds[-2]["synthetic_total"] == per_round * (len(rounds) - 2)


def test_strategies_of_one_comparison_share_the_fitted_generator(toy):
    task = Task.build(toy, budget=5, val_per_class=5, seed=0, model=NamedSpec(name="mlp"), recipe=TrainRecipe(),
                      synthetic=None)
    g1, log1 = fitted_generator(task, "pca_gmm", {"components": 2})
    g2, log2 = fitted_generator(task, "pca_gmm", {"components": 2})
    assert log1["key"] == log2["key"] and log2["cached"] and not log1["cached"]
    rng = np.random.default_rng
    a = g1.sample(5, Conditions(labels=np.zeros(5, dtype=int)), rng(0)).x
    b = g2.sample(5, Conditions(labels=np.zeros(5, dtype=int)), rng(0)).x
    np.testing.assert_array_equal(a, b)
    other = Task.build(toy, budget=5, val_per_class=5, seed=1, model=NamedSpec(name="mlp"), recipe=TrainRecipe())
    assert fitted_generator(other, "pca_gmm", {"components": 2})[1]["key"] != log1["key"]


def test_pca_gmm_variation_moves_from_the_seed_towards_the_class(toy):
    task = Task.build(toy, budget=50, val_per_class=5, seed=0, model=NamedSpec(name="mlp"), recipe=TrainRecipe())
    gen, _ = fitted_generator(task, "pca_gmm", {"components": 2, "mixtures": 1})
    seeds = np.tile(np.array([[3.0, 0.0]], dtype=np.float32), (200, 1))  # deep inside class 1
    labels = np.zeros(200, dtype=int)  # ask for class 0 (centred near x = -3)
    rng = np.random.default_rng(0)
    copy = gen.sample(200, Conditions(labels=labels, seeds=seeds, strength=0.0), rng).x
    half = gen.sample(200, Conditions(labels=labels, seeds=seeds, strength=0.5), rng).x
    full = gen.sample(200, Conditions(labels=labels, seeds=seeds, strength=1.0), rng).x
    np.testing.assert_allclose(copy, seeds, atol=1e-4)
    assert full[:, 0].mean() < -1.5 and -1.5 < half[:, 0].mean() < 1.5


def test_mix_weights_give_synthetic_data_its_share_class_balanced():
    real_y, syn_y = np.array([0, 0, 0, 1]), np.array([1, 1])
    w = mix_weights(real_y, syn_y, 0.25)
    assert w[4:].sum() == pytest.approx(0.25) and w[:4].sum() == pytest.approx(0.75)
    assert w[:3].sum() == pytest.approx(w[3])  # each real class gets half of the real share
    assert mix_weights(real_y, syn_y[:0], 0.25).sum() == pytest.approx(1.0)


def test_smote_adds_the_budget_per_class_between_same_class_neighbours(toy):
    task = Task.build(toy, budget=20, val_per_class=5, seed=0, model=NamedSpec(name="mlp"), recipe=TrainRecipe())
    new = smote_samples(task.train, per_class=30, k_neighbors=5, seed=0)
    assert np.bincount(new.y).tolist() == [30, 30]
    for c in (0, 1):  # interpolations stay inside the class's bounding box
        real = task.train.x[task.train.y == c]
        assert (new.x[new.y == c] >= real.min(0) - 1e-6).all() and (new.x[new.y == c] <= real.max(0) + 1e-6).all()


def test_ensemble_uncertainty_and_validation_pool_run_through_the_loop(toy, one_thread):
    task = toy_task(toy, seed=1)
    result = STRATEGIES.get("active_synthesis")(uncertainty="ensemble", members=3, pool="validation",
                                                max_rounds=2, round_epochs=20, tau=0.9).run(task)
    assert result.log["pool_size"] == len(task.val)
    assert len(result.log["rounds"]) == 3 and result.log["synthetic_examples"] == 80
    p = result.classifier.predict_proba(task.test.x)
    assert p.shape == (len(task.test), 2) and (p.argmax(1) == task.test.y).mean() > 0.85


def test_bad_parameters_are_rejected_at_build_time():
    from bench.errors import BenchError
    
    with pytest.raises(BenchError, match="a quantile tau must lie in"):
        STRATEGIES.build("active_synthesis", {"tau": 1.5})
    with pytest.raises(BenchError, match="uncertainty must be"):
        STRATEGIES.build("active_synthesis", {"uncertainty": "laplace"})


def test_uncertain_prompts_name_the_target_and_its_confuser():
    from bench.method.active import uncertain_prompts

    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
    prompts = uncertain_prompts("a {label} like a {confuser}", ["cat", "dog", "fox"], np.array([0, 2, 2]), probs)
    assert prompts == ["a cat like a dog", "a fox like a dog", "a fox like a cat"]


PROMPTS_SEEN: list[list[str] | None] = []


@GENERATORS.register("recording_toy_oracle", modalities=("vector",))
@dataclass
class RecordingToyOracle(ToyPocketsOracle):
    """The toy oracle, recording the class names it is fitted with and the prompts it is sampled with."""

    def fit(self, real, info, seed):
        self.class_names_ = list(info.classes)
        return super().fit(real, info, seed)

    def sample(self, n, conditions, rng):
        PROMPTS_SEEN.append(conditions.prompts)
        return super().sample(n, conditions, rng)


def test_loop_prompts_reach_the_generator_and_it_is_given_the_class_names(toy, one_thread):
    task = toy_task(toy, seed=0)
    generator, _ = fitted_generator(task, "recording_toy_oracle", {})
    assert generator.class_names_ == ["left", "right"]  # the data set's, through DatasetInfo
    task.synthetic = SyntheticSpec(generator=NamedSpec(name="recording_toy_oracle"), budget_per_class=10, mix_ratio=0.5)
    PROMPTS_SEEN.clear()
    STRATEGIES.get("active_synthesis")(max_rounds=1, round_epochs=2,
                                       prompt_template="{label} point, not {confuser}").run(task)
    (prompts,) = PROMPTS_SEEN
    assert len(prompts) == 20 and set(prompts) <= {"left point, not right", "right point, not left"}
