"""Tables through the harness: the table model, the sdv generators and their conditions, the DP-GAN's
table variant, SMOTE-NC, and the active loop's targeting of column values."""
from __future__ import annotations

import numpy as np
import pytest

from bench.api import Conditions, DatasetInfo, DatasetSplits, Split
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.generator import fitted_generator
from bench.method.targeting import Target, attribute_conditions, bo_conditions, overrepresented
from bench.registry import GENERATORS, STRATEGIES
from bench.table import Column, Sensitive, TableSchema
from bench.task import Task

SCHEMA = TableSchema(
    (Column("age", "numeric", integer=True, low=18, high=90),
     Column("sex", "categorical", ("female", "male")),
     Column("job", "categorical", ("clerk", "farmer", "nurse", "pilot")),
     Column("hours", "numeric", low=0, high=100)),
    {"sex": Sensitive("sex")},
)


def make_rows(n: int, rng: np.random.Generator) -> Split:
    """The label is 1 for pilots and for anyone over 60; hours carry no signal."""
    age = rng.integers(18, 91, n)
    sex, job = rng.integers(0, 2, n), rng.integers(0, 4, n)
    hours = rng.uniform(0, 100, n)
    x = np.c_[age, sex, job, hours].astype(np.float64)
    y = ((job == 3) | (age > 60)).astype(np.int64)
    return Split(x, y, groups=SCHEMA.groups(x))


@pytest.fixture(scope="module")
def table() -> DatasetSplits:
    rng = np.random.default_rng(0)
    return DatasetSplits(name="toy_table", modality="tabular", classes=["no", "yes"], train=make_rows(3000, rng),
                         test=make_rows(1000, rng), schema=SCHEMA)


def table_task(table: DatasetSplits, generator: str = "gaussian_copula", budget: int = 60, epochs: int = 60) -> Task:
    return Task.build(table, budget=budget, val_per_class=50, seed=0,
                      model=NamedSpec(name="mlp", params={"hidden": [32], "dropout": 0.2}),
                      recipe=TrainRecipe(epochs=epochs, batch_size=32, lr=3e-3),
                      synthetic=SyntheticSpec(generator=NamedSpec(name=generator), budget_per_class=40, mix_ratio=0.5))


def test_table_model_one_hots_categories(table):
    task = table_task(table)
    clf = task.fit()
    encoder = clf.module.features[0]
    assert encoder.out_features == 2 + 2 + 4  # two numbers, then 2 + 4 one-hot columns
    pilots = table.test.x[:, 2] == 3
    acc = (clf.predict_proba(table.test.x).argmax(1) == table.test.y)
    # A code is a category, not a magnitude: pilots (the largest code) are all positive, and the
    # model gets them right; an all-numeric MLP on 60 rows per class would not separate code 3 cleanly.
    assert acc[pilots].mean() > 0.9 and acc.mean() > 0.8


@pytest.mark.parametrize("name,params", [("gaussian_copula", {}), ("ctgan", {"epochs": 5, "batch_size": 50, "pac": 5})])
def test_sdv_generators_meet_label_and_column_conditions(table, name, params):
    task = table_task(table)
    gen, _ = fitted_generator(task, name, params)
    labels = np.r_[np.ones(30, int), np.zeros(30, int)]
    job = np.r_[np.full(30, 3.0), np.full(30, np.nan)]  # pilots for the first 30 rows, free for the rest
    out = gen.sample(60, Conditions(labels=labels, attributes={"job": job}), np.random.default_rng(1))
    assert np.array_equal(out.y, labels)
    met = out.x[:30, 2] == 3
    assert met.all() or gen.fallbacks_ == (~met).sum()  # met, or given up and counted
    assert np.array_equal(out.x, SCHEMA.clean(out.x))  # valid codes, whole ages, numbers in their domain
    again = gen.sample(60, Conditions(labels=labels, attributes={"job": job}), np.random.default_rng(1))
    np.testing.assert_array_equal(out.x, again.x)  # the rng decides the rows


def test_dp_gan_table_variant_samples_valid_rows_within_epsilon(table):
    task = table_task(table)
    gen, _ = fitted_generator(task, "dp_gan", {"target_epsilon": 5.0, "epochs": 5, "batch_size": 32})
    assert gen.variant_ == "table" and gen.epsilon_ <= 5.0 + 1e-6
    out = gen.sample(50, Conditions(labels=np.zeros(50, int)), np.random.default_rng(0))
    assert np.array_equal(out.x, SCHEMA.clean(out.x))
    from bench.method.generators.dp_gan import TableCodec

    codec = TableCodec(SCHEMA)
    x = table.train.x[:20]
    assert codec.width == 2 + 2 + 4
    np.testing.assert_allclose(codec.decode(codec.encode(x)), SCHEMA.clean(x), atol=1e-4)


def test_smote_nc_keeps_categories_of_same_class_neighbours(table):
    from bench.baselines.smote import smote_samples

    task = table_task(table)
    out = smote_samples(task.train, per_class=40, k_neighbors=5, seed=0, schema=SCHEMA)
    assert len(out) == 80 and np.array_equal(out.x, SCHEMA.clean(out.x))
    for c in (0, 1):  # every generated category value occurs among the real rows of its class
        real_jobs = set(task.train.x[task.train.y == c, 2])
        assert set(out.x[out.y == c, 2]) <= real_jobs
    # pilots are all positive, so SMOTE-NC's negatives never become pilots
    assert not (out.x[out.y == 0, 2] == 3).any()


def test_overrepresented_values_and_one_condition_per_row():
    pool = np.zeros((100, 4))
    pool[:, 2] = np.repeat([0, 1, 2, 3], 25)  # 25 rows of each job
    pool[:50, 1] = 1  # clerks and farmers are male
    region = np.r_[np.arange(75, 100), np.arange(0, 5)]  # all 25 pilots and 5 clerks
    targets = overrepresented(SCHEMA, pool, region, min_lift=1.2, min_count=5)
    assert targets[0] == Target("job", 3, lift=pytest.approx((25 / 30) / 0.25), count=25)
    assert all(t.lift >= 1.2 for t in targets) and ("job", 1) not in {(t.column, t.code) for t in targets}
    attrs = attribute_conditions(SCHEMA, pool[[99, 0, 30]], targets)
    assert attrs["job"][0] == 3  # a pilot row is conditioned on being a pilot
    assert np.isnan(attrs["job"][2]) and all(np.isnan(v[2]) for v in attrs.values())  # a farmer: no target


def test_bayesian_optimisation_finds_the_informative_condition():
    targets = [Target("job", 3, 3.0, 25), Target("sex", 1, 1.5, 20)]

    def sample(k, label, target, seed):  # rows remember their condition in two columns
        return np.tile([label, -1 if target is None else targets.index(target)], (k, 1)).astype(float)

    def bald(x):  # only label 1 with the first target is informative
        return np.where((x[:, 0] == 1) & (x[:, 1] == 0), 0.6, 0.01)

    labels, attrs, trials = bo_conditions(sample, bald, num_classes=2, targets=targets, n=100, trials=15, probe=4,
                                          keep=3, seed=0)
    assert len(labels) == 100 and len(trials) == 15
    best = (labels == 1) & (attrs["job"] == 3)
    assert best.mean() > 0.9  # the share follows the scores: 0.6 against 0.01


def test_active_loop_targets_columns_of_the_uncertain_region(table):
    task = table_task(table, epochs=30)
    result = STRATEGIES.get("active_synthesis")(uncertainty="mc_dropout", passes=20, max_rounds=2, round_epochs=10,
                                                pool_size=1000).run(task)
    rounds = [r for r in result.log["rounds"][1:] if "targeting" in r]
    assert rounds and all(r["targeting"]["kind"] == "attributes" for r in rounds)
    assert len(result.synthetic) == 80 and np.array_equal(result.synthetic.x, SCHEMA.clean(result.synthetic.x))
    bo = STRATEGIES.get("active_synthesis")(uncertainty="mc_dropout", passes=10, max_rounds=1, round_epochs=5,
                                            pool_size=500, targeting="bo", bo_trials=4, bo_probe=8).run(task)
    (r1,) = [r for r in bo.log["rounds"] if r.get("targeting")]
    assert r1["targeting"]["kind"] == "bo" and len(r1["targeting"]["trials"]) == 4
    assert len(bo.synthetic) == 80


def test_targeting_columns_of_images_is_an_error(tiny_task):
    from bench.errors import BenchError

    strategy = STRATEGIES.get("active_synthesis")(targeting="attributes", max_rounds=1, passes=2, pool="validation")
    with pytest.raises(BenchError, match="needs a table"):
        strategy.run(tiny_task)


def test_generators_ask_for_a_table():
    from bench.errors import BenchError

    gen = GENERATORS.build("gaussian_copula", {})
    with pytest.raises(BenchError, match="needs a table"):
        gen.fit(Split(np.zeros((4, 2)), np.zeros(4, int)), DatasetInfo.unnamed(2, "tabular"), 0)
