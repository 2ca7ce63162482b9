"""The loop's controls and its common random numbers: f_0 is the real_only model of the seed, the method
and its random control differ in nothing but their seeds (a recording generator sees the rest equal),
and each control adds what it says (nothing, true-labelled pool examples, seed copies, permuted labels)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.api import Conditions, DatasetSplits, Split
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.errors import BenchError
from bench.method.active import Round
from bench.registry import STRATEGIES
from bench.synthesis import empty_like
from bench.table import Column, TableSchema
from bench.task import Task

LOOP = dict(passes=8, pool_size=300, max_rounds=2, patience=5, round_epochs=3, tau=0.8)


@pytest.fixture(scope="module")
def toy():
    from bench.registry import DATASETS

    return DATASETS.get("toy_pockets")().load()


def toy_task(toy, seed: int = 2) -> Task:
    return Task.build(toy, budget=5, val_per_class=40, seed=seed,
                      model=NamedSpec(name="mlp", params={"hidden": [16], "dropout": 0.3}),
                      recipe=TrainRecipe(epochs=15, batch_size=16, lr=1e-2),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="toy_pockets_oracle"), budget_per_class=20,
                                              mix_ratio=0.5))


class Recorder:
    """A generator that records what it is asked and returns the seeds (or noise) with the asked labels."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        state = rng.bit_generator.state["state"]["state"]
        self.calls.append({"n": n, "rng": state, "labels": np.asarray(conditions.labels), "seeds": conditions.seeds,
                           "strength": conditions.strength, "prompts": conditions.prompts,
                           "uncertainty": conditions.uncertainty, "attributes": conditions.attributes})
        x = np.asarray(conditions.seeds, dtype=np.float32) + rng.normal(size=(n, 2)).astype(np.float32) * 0.1
        return Split(x, np.asarray(conditions.labels))


def run_recorded(name: str, task: Task, **params: Any) -> tuple[Any, Recorder, list[dict[str, Any]]]:
    """Run strategy `name` with a recording generator and a record of every training call."""
    strategy = STRATEGIES.build(name, {**LOOP, **params})
    recorder, fits = Recorder(), []
    strategy.fitted_generator = lambda task, *a, **k: (recorder, {"name": "recorder"})
    real_fit = Task.fit

    def fit(train=None, *, seed=None, recipe=None, label="train", **options):
        fits.append({"seed": seed, "epochs": (recipe or task.recipe).epochs, "n": len(train if train is not None else task.train),
                     "kl_weight": options.get("kl_weight"), "warm": options.get("init") is not None,
                     "weights": None if options.get("sample_weight") is None else len(options["sample_weight"])})
        return real_fit(task, train, seed=seed, recipe=recipe, label=label, **options)

    task.fit = fit
    try:
        result = strategy.run(task)
    finally:
        del task.fit
    return result, recorder, fits


def test_the_loops_first_model_is_the_real_only_model_of_the_seed(toy, one_thread):
    task = toy_task(toy, seed=2)
    real = STRATEGIES.build("real_only", {}).run(task).classifier
    f0 = STRATEGIES.build("active_synthesis", LOOP).fit_round(task, 0)[0]
    x = np.asarray(task.val.x)
    np.testing.assert_array_equal(f0.predict_proba(x), real.predict_proba(x))


def test_method_and_random_control_differ_only_in_their_seeds(toy, one_thread):
    method, m_gen, m_fits = run_recorded("active_synthesis", toy_task(toy))
    control, c_gen, c_fits = run_recorded("random_synthetic", toy_task(toy))
    assert method.log["seeds_from"] == "U_tau" and control.log["seeds_from"] == "pool"
    assert len(m_gen.calls) == len(c_gen.calls) >= 1
    for a, b in zip(m_gen.calls, c_gen.calls):
        assert a["n"] == b["n"] and a["rng"] == b["rng"]  # the same count and the same sampling stream
        assert (a["strength"], a["prompts"], a["uncertainty"], a["attributes"]) == \
               (b["strength"], b["prompts"], b["uncertainty"], b["attributes"])
        assert not np.array_equal(a["seeds"], b["seeds"])
    # The same training calls in the same order: seeds, epochs, data size, KL and warm start.
    assert m_fits[: len(c_fits)] == c_fits[: len(m_fits)]
    assert m_fits[0]["seed"] == 2  # f_0: the real_only model of seed 2


def table_data() -> DatasetSplits:
    schema = TableSchema((Column("job", "categorical", ("clerk", "farmer", "nurse", "pilot")),
                          Column("hours", "numeric", low=0, high=100)), {})
    rng = np.random.default_rng(0)

    def rows(n: int) -> Split:
        job, hours = rng.integers(0, 4, n), rng.uniform(0, 100, n)
        return Split(np.c_[job, hours].astype(np.float64), (job == 3).astype(np.int64))

    return DatasetSplits(name="toy_jobs", modality="tabular", classes=["no", "yes"], train=rows(600), test=rows(100),
                         schema=schema)


def test_a_table_control_conditions_on_its_seeds_values_by_the_methods_rule():
    data = table_data()
    task = Task.build(data, budget=20, val_per_class=20, seed=0, model=NamedSpec(name="mlp"), recipe=TrainRecipe(),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="gaussian_copula"), budget_per_class=10,
                                              mix_ratio=0.5))
    pool = task.pool
    region = np.flatnonzero(np.asarray(pool.x)[:, 0] == 3)  # an uncertain region of pilots only
    chosen = np.arange(40)  # the same seed rows for both: the rule must then give the same conditions
    labels = np.zeros(40, dtype=np.int64)
    got = {}
    for name in ("active_synthesis", "random_synthetic"):
        strategy = STRATEGIES.build(name, {"targeting": "attributes"})
        rnd = Round(number=1, models=[], pool=pool, uncertainty=None, threshold=0.5, region=region, chosen=chosen,
                    labels=labels, draws={}, earlier=empty_like(task.train))
        conditions, log = strategy.conditions(task, None, rnd)
        got[name] = conditions
        assert log["kind"] == "attributes" and log["targets"]
    a, b = got["active_synthesis"].attributes, got["random_synthetic"].attributes
    assert a.keys() == b.keys() == {"job"}
    np.testing.assert_array_equal(a["job"], b["job"])
    pilots = np.asarray(pool.x)[chosen, 0] == 3
    assert np.all(a["job"][pilots] == 3) and np.all(np.isnan(a["job"][~pilots]))


def test_text_sampling_is_scaled_by_uncertainty_only_when_asked(toy, one_thread):
    _, plain, _ = run_recorded("active_synthesis", toy_task(toy))
    assert all(call["uncertainty"] is None for call in plain.calls)
    _, scaled, _ = run_recorded("active_synthesis", toy_task(toy), scale_sampling=True)
    assert all(call["uncertainty"] is not None for call in scaled.calls)
    _, control, _ = run_recorded("random_synthetic", toy_task(toy), scale_sampling=True)
    assert all(call["uncertainty"] is None for call in control.calls)


def test_loop_real_only_adds_nothing_through_the_same_rounds(toy, one_thread):
    method, _, m_fits = run_recorded("active_synthesis", toy_task(toy))
    control, recorder, c_fits = run_recorded("loop_real_only", toy_task(toy))
    assert recorder.calls == [] and len(control.synthetic) == 0
    assert control.log["synthetic_in_returned_model"] == 0 and not control.log["pool_labels_read"]
    assert [f["seed"] for f in c_fits] == [f["seed"] for f in m_fits]  # the same rounds, the same seeds
    assert all(f["n"] == len(toy_task(toy).train) for f in c_fits)
    assert [f["warm"] for f in c_fits] == [f["warm"] for f in m_fits]


def test_oracles_add_pool_examples_with_their_true_labels(toy, one_thread):
    task = toy_task(toy)
    pool = {tuple(np.round(x, 6)): int(y) for x, y in zip(np.asarray(task.pool.x), task.pool.y)}
    for name, seeds_from in (("oracle_real", "pool"), ("oracle_active", "U_tau")):
        result, recorder, _ = run_recorded(name, toy_task(toy))
        assert recorder.calls == [] and result.log["pool_labels_read"] and result.log["seeds_from"] == seeds_from
        assert len(result.synthetic) == 40
        for x, y in zip(np.asarray(result.synthetic.x), result.synthetic.y):
            assert pool[tuple(np.round(x, 6))] == int(y)
        caps = STRATEGIES.caps(name)
        assert caps.kind == "control" and caps.reads_pool_labels
    assert STRATEGIES.caps("oracle_real").control_role == "positive"


def test_pseudo_label_adds_copies_of_the_methods_seeds(toy, one_thread):
    method, m_gen, _ = run_recorded("active_synthesis", toy_task(toy))
    pseudo, recorder, _ = run_recorded("pseudo_label", toy_task(toy))
    assert recorder.calls == [] and not pseudo.log["pool_labels_read"]
    first = m_gen.calls[0]
    np.testing.assert_array_equal(np.asarray(pseudo.synthetic.x)[: first["n"]], first["seeds"])
    np.testing.assert_array_equal(pseudo.synthetic.y[: first["n"]], first["labels"])


def test_permuted_labels_shuffles_random_synthetic_labels(toy, one_thread):
    control, c_gen, _ = run_recorded("random_synthetic", toy_task(toy))
    negative, n_gen, _ = run_recorded("permuted_labels", toy_task(toy))
    assert STRATEGIES.caps("permuted_labels").control_role == "negative"
    first = c_gen.calls[0]
    np.testing.assert_array_equal(n_gen.calls[0]["seeds"], first["seeds"])  # the same examples...
    got = negative.synthetic.y[: first["n"]]
    assert sorted(got.tolist()) == sorted(first["labels"].tolist())  # ...with their labels permuted
    assert not np.array_equal(got, first["labels"])


def test_a_control_refuses_a_guidance_setting():
    with pytest.raises(BenchError, match="leave guidance out"):
        STRATEGIES.build("oracle_real", {"guidance": True})
    with pytest.raises(BenchError, match="leave guidance out"):
        STRATEGIES.build("loop_real_only", {"guidance": False})


def test_the_log_says_what_the_returned_model_trained_on_and_why_budget_is_unspent(toy, one_thread):
    result, _, _ = run_recorded("active_synthesis", toy_task(toy), max_rounds=4, patience=1)
    log = result.log
    returned = next(r for r in log["rounds"] if r["round"] == log["returned_round"] and "synthetic_total" in r)
    assert log["synthetic_in_returned_model"] == returned["synthetic_total"]
    if log["synthetic_examples"] < log["synthetic_budget"]:
        assert log["stopped_because"] in log["budget_unspent_because"]
    else:
        assert "budget_unspent_because" not in log
