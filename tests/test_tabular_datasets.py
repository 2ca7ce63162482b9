"""Tabular data set loaders: UCI Adult (the published counts after dropping rows with missing values, its
schema, sex and race groups), Taiwan credit (the seeded stratified split, pinned), the generated
transactions (deterministic, rare fraud that follows its documented pattern), and errors for damaged
files or values outside the schema."""
from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from bench.api import DatasetSplits
from bench.benchmarks.datasets import adult, taiwan_credit, transactions
from bench.data import SHARED_DATA_DIR
from bench.errors import BenchError
from bench.registry import DATASETS
from bench.table import TableSchema


@pytest.fixture(scope="module")
def income() -> DatasetSplits:
    return DATASETS.get("adult")().load()


@pytest.fixture(scope="module")
def credit() -> DatasetSplits:
    return DATASETS.get("taiwan_credit")().load()


@pytest.fixture(scope="module")
def fraud() -> DatasetSplits:
    return DATASETS.get("transactions")().load()


def check_table(d: DatasetSplits) -> None:
    """What every tabular data set owes the harness: float64 rows in schema order, codes and numbers inside
    the schema, groups read by the schema, and a lossless round trip through a data frame."""
    assert d.modality == "tabular" == DATASETS.meta(d.name)["modality"] and isinstance(d.schema, TableSchema)
    assert d.num_classes == DATASETS.meta(d.name)["classes"] == 2
    for split in (d.train, d.test):
        assert split.x.dtype == np.float64 and split.x.shape == (len(split), len(d.schema.columns))
        assert split.y.dtype == np.int64 and set(np.unique(split.y)) == {0, 1}
        assert np.array_equal(d.schema.clean(split.x), split.x)  # codes in range, integers whole, inside bounds
        for i in d.schema.categorical:
            assert set(np.unique(split.x[:, i])) <= set(range(len(d.schema.columns[i].categories)))
        groups = d.schema.groups(split.x)
        assert set(split.groups) == set(d.schema.sensitive) and all(np.array_equal(groups[k], v)
                                                                     for k, v in split.groups.items())
        x, y = d.schema.from_frame(d.schema.to_frame(split.x, split.y, d.classes), d.classes)
        assert np.array_equal(x, split.x) and np.array_equal(y, split.y)


def test_adult_official_split_without_missing_values(income):
    check_table(income)
    assert income.classes == ["<=50K", ">50K"]
    # adult.names: 30,162 / 15,060 rows without unknowns; 24.89% / 24.57% of them >50K
    assert len(income.train) == 30162 and len(income.test) == 15060
    assert int(income.train.y.sum()) == 7508 and int(income.test.y.sum()) == 3700
    assert "fnlwgt" not in income.schema.names and "education" not in income.schema.names
    assert len(income.schema.columns) == 12 and len(income.schema.categorical) == 7
    for split in (income.train, income.test):
        assert set(np.unique(split.groups["sex"])) == {"Female", "Male"}
        assert set(np.unique(split.groups["race"])) == {"Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black",
                                                         "Other", "White"}
    # Women are about a third of the rows and earn >50K far less often (the attribute's point).
    female = income.train.groups["sex"] == "Female"
    assert int(female.sum()) == 9782 and income.train.y[female].mean() < income.train.y[~female].mean() / 2
    first = income.schema.to_frame(income.train.x[:1]).iloc[0]  # adult.data's first row
    assert (first["age"], first["workclass"], first["education-num"], first["capital-gain"]) == (39, "State-gov",
                                                                                                 13, 2174)
    assert first["native-country"] == "United-States" and income.train.y[0] == 0


def test_adult_damaged_file_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))  # no cached decode may hide the damage
    folder = tmp_path / "data" / "adult"
    folder.mkdir(parents=True)
    for f in adult.FILES:
        shutil.copy(SHARED_DATA_DIR / "adult" / f.name, folder / f.name)
        (folder / f.name).chmod(0o644)
    data = (folder / "adult.data.gz").read_bytes()
    (folder / "adult.data.gz").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(BenchError, match=r"adult\.data\.gz has sha256"):
        DATASETS.get("adult")(data_dir=str(tmp_path / "data")).load()
    (folder / "adult.data.gz").unlink()
    with pytest.raises(BenchError, match=r"lacks adult\.data\.gz"):
        DATASETS.get("adult")(data_dir=str(tmp_path / "data")).load()


def test_adult_value_outside_the_schema_is_an_error_naming_it(tmp_path):
    row = "39, {}, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, {}, " \
          "United-States, <=50K\n"
    for bad, match in ((row.format("Space-agency", 40), "unknown category 'Space-agency'"),
                       (row.format("State-gov", 120), "'hours-per-week' has values outside")):
        with gzip.open(tmp_path / "adult.data.gz", "wt") as f:
            f.write(row.format("?", 40) + bad)  # the first row is dropped (missing workclass)
        with pytest.raises(BenchError, match=match):
            adult._read(tmp_path / "adult.data.gz", skip_first_line=False)


def test_taiwan_credit_seeded_stratified_split(credit):
    check_table(credit)
    assert credit.classes == ["no default", "default"]
    assert len(credit.train) == 24000 and len(credit.test) == 6000
    assert int(credit.train.y.sum() + credit.test.y.sum()) == 6636  # DATA.md: 6,636 defaults (22.1%)
    assert abs(credit.train.y.mean() - credit.test.y.mean()) < 0.005
    assert "ID" not in credit.schema.names and len(credit.schema.columns) == 23
    for split in (credit.train, credit.test):
        assert set(np.unique(split.groups["sex"])) == {"male", "female"}
        assert set(np.unique(split.groups["age"])) == {"<30", "30-39", "40-49", "50+"}
        age = split.x[:, credit.schema.index("AGE")]
        assert np.array_equal(split.groups["age"] == "<30", age < 30)
        assert np.array_equal(split.groups["age"] == "50+", age >= 50)
    again = DATASETS.get("taiwan_credit")().load()
    assert np.array_equal(again.test.x, credit.test.x) and np.array_equal(again.train.y, credit.train.y)


def test_taiwan_credit_split_is_pinned():
    # The test split must not change silently (e.g. with a scikit-learn release): every score would.
    import pandas as pd

    y = pd.read_csv(SHARED_DATA_DIR / "taiwan_credit" / taiwan_credit.FILES[0].name)[taiwan_credit.LABEL].to_numpy()
    train, test = taiwan_credit.split_indices(y, taiwan_credit.TEST_FRACTION, taiwan_credit.SPLIT_SEED)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 30000
    assert hashlib.sha256(test.astype(np.int64).tobytes()).hexdigest().startswith("011cb7a5275683ba")


def test_transactions_are_deterministic_with_rare_fraud(fraud):
    check_table(fraud)
    assert fraud.classes == ["legitimate", "fraud"] and DATASETS.meta("transactions")["license"] == "generated in code"
    assert len(fraud.train) == 20000 and len(fraud.test) == 10000
    again = DATASETS.get("transactions")().load()
    for a, b in ((fraud.train, again.train), (fraud.test, again.test)):
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(fraud.train.x[:100], fraud.test.x[:100])  # independent streams
    other = transactions.Transactions(seed=1, n_train=50, n_test=50).load()
    assert not np.array_equal(other.train.x, fraud.train.x[:50])
    for split in (fraud.train, fraud.test):
        assert 0.01 <= split.y.mean() <= 0.03
        assert set(np.unique(split.groups["age_band"])) == set(transactions.AGE_BANDS)


def test_transactions_fraud_follows_the_documented_pattern(fraud):
    s, col = fraud.train, fraud.schema.index
    night_online_large = ((s.x[:, col("hour")] <= 5) & (s.x[:, col("channel")] == transactions.CHANNELS.index("online"))
                          & (s.x[:, col("amount")] > transactions.LARGE_AMOUNT))
    assert night_online_large.sum() > 50
    assert s.y[night_online_large].mean() > 5 * s.y[~night_online_large].mean()
    new = s.x[:, col("account_age_days")] < 30
    assert s.y[new].mean() > 2 * s.y[~new].mean()
    # The band is no term of the logit, yet the young see more fraud (through the features).
    young, old = (s.groups["age_band"] == b for b in ("18-29", "65+"))
    p = 1 / (1 + np.exp(-transactions.fraud_logit(s.x)))
    assert p[young].mean() > 1.5 * p[old].mean() and s.y[young].mean() > s.y[old].mean()
    assert abs(p.mean() - 0.02) < 0.003 and abs(s.y.mean() - p.mean()) < 0.004
