"""UCI Adult (Kohavi and Becker 1996, from the 1994 US census): does a person earn more than $50K a year?
Class 0 = "<=50K", 1 = ">50K". CC BY 4.0.

Files: `adult.data.gz` (train) and `adult.test.gz` (test), the original UCI files gzipped; adult.test's
first line (`|1x3 Cross validator`) is skipped and its labels' trailing `.` (`>50K.`) removed. The
official train/test split is kept.

Rows with a missing value (`?`, in workclass, occupation or native-country) are dropped, as is usual
and as adult.names counts them: 30,162 train rows (7,508 >50K) and 15,060 test rows (3,700 >50K)
remain, of 32,561 and 16,281.

Columns (schema order; names as in adult.names): age, workclass, education-num, marital-status,
occupation, relationship, race, sex, capital-gain, capital-loss, hours-per-week, native-country.
Dropped: `fnlwgt` (the census sampling weight: how many people the row stands for, not an attribute of
the person) and `education` (a one-to-one duplicate of education-num, which orders the same levels).
Numeric columns are whole numbers; categorical columns' categories are the sorted values of the training
rows kept, fixed below as constants and checked against the files when they are decoded. `Never-worked`
(workclass) occurs only in rows whose occupation is missing, so no kept row has it and it is not a
category. No kept test row has a value that the kept training rows lack (checked at decode).

Sensitive attributes: `sex` (Female, Male) and `race` (the five census groups), read from their columns
by the schema; `groups` holds them per row in both splits.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.api import DatasetSplits
from bench.data import DataFile, locate, verified_cache
from bench.errors import BenchError
from bench.registry import DATASETS
from bench.table import Column, Sensitive, TableSchema, whole_numbers

# No download source: UCI serves the files uncompressed (other checksums); they are in ../shared/data.
FILES = (
    DataFile("adult.data.gz", "fb986d3609cdf068a1c234ed2695603b74c66c4be723467d9d69542024847442"),
    DataFile("adult.test.gz", "74aa81a0e0880467a50de97be6ba8130df14a3ef8c0c3a14de2a9a997d068fbf"),
)
CLASSES = ["<=50K", ">50K"]
RAW_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
               "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
               "income"]  # the order of fields in adult.data / adult.test (adult.names)

CATEGORIES = {  # sorted values of the kept training rows
    "workclass": ("Federal-gov", "Local-gov", "Private", "Self-emp-inc", "Self-emp-not-inc", "State-gov",
                  "Without-pay"),
    "marital-status": ("Divorced", "Married-AF-spouse", "Married-civ-spouse", "Married-spouse-absent",
                       "Never-married", "Separated", "Widowed"),
    "occupation": ("Adm-clerical", "Armed-Forces", "Craft-repair", "Exec-managerial", "Farming-fishing",
                   "Handlers-cleaners", "Machine-op-inspct", "Other-service", "Priv-house-serv", "Prof-specialty",
                   "Protective-serv", "Sales", "Tech-support", "Transport-moving"),
    "relationship": ("Husband", "Not-in-family", "Other-relative", "Own-child", "Unmarried", "Wife"),
    "race": ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"),
    "sex": ("Female", "Male"),
    "native-country": (
        "Cambodia", "Canada", "China", "Columbia", "Cuba", "Dominican-Republic", "Ecuador", "El-Salvador", "England",
        "France", "Germany", "Greece", "Guatemala", "Haiti", "Holand-Netherlands", "Honduras", "Hong", "Hungary",
        "India", "Iran", "Ireland", "Italy", "Jamaica", "Japan", "Laos", "Mexico", "Nicaragua",
        "Outlying-US(Guam-USVI-etc)", "Peru", "Philippines", "Poland", "Portugal", "Puerto-Rico", "Scotland", "South",
        "Taiwan", "Thailand", "Trinadad&Tobago", "United-States", "Vietnam", "Yugoslavia"),
}


# Numeric bounds: the UCI documented / observed domain, not computed at load time. The extraction kept
# age > 16 and hours-per-week > 0 (adult.names); 90 (age), 99 (hours-per-week) and 99,999 (capital-gain,
# US dollars) are the census top codes; capital-loss (US dollars) tops out at 4,356 in both files;
# education-num numbers the 16 education levels (1 = Preschool ... 16 = Doctorate). No row falls outside.
SCHEMA = TableSchema(
    columns=(
        whole_numbers("age", 17, 90),  # years
        Column("workclass", "categorical", CATEGORIES["workclass"]),
        whole_numbers("education-num", 1, 16),
        *(Column(c, "categorical", CATEGORIES[c]) for c in ("marital-status", "occupation", "relationship", "race",
                                                            "sex")),
        whole_numbers("capital-gain", 0, 99999),  # US dollars
        whole_numbers("capital-loss", 0, 4356),  # US dollars
        whole_numbers("hours-per-week", 1, 99),  # hours
        Column("native-country", "categorical", CATEGORIES["native-country"]),
    ),
    sensitive={"sex": Sensitive("sex"), "race": Sensitive("race")},
)


def _read(path: Path, skip_first_line: bool) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one file's complete rows, encoded by SCHEMA; a value outside it is a BenchError."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, header=None, names=RAW_COLUMNS, skipinitialspace=True, skiprows=1 if skip_first_line
                            else 0, na_values=["?"], keep_default_na=False, compression="gzip")
    except (OSError, ValueError, EOFError) as exc:  # unreadable, a damaged gzip stream, a malformed row
        raise BenchError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    frame = frame.dropna()
    labels = frame["income"].astype(str).str.rstrip(".")  # adult.test writes ">50K."
    try:
        x, y = SCHEMA.from_frame(frame.assign(label=labels), classes=CLASSES)
    except (ValueError, KeyError, TypeError) as exc:  # an unknown category or label, a non-numeric field
        raise BenchError(f"{path}: {exc}") from None
    if bad := SCHEMA.out_of_domain(x):
        c = SCHEMA.column(bad[0])
        raise BenchError(f"{path}: column {c.name!r} has values outside the whole numbers {c.low}..{c.high}")
    return x, y


def _decode(folder: Path) -> dict[str, np.ndarray]:
    x_train, y_train = _read(folder / FILES[0].name, skip_first_line=False)
    x_test, y_test = _read(folder / FILES[1].name, skip_first_line=True)
    for i in SCHEMA.categorical:  # categories are the training rows' values: none may be unused there
        c = SCHEMA.columns[i]
        if len(np.unique(x_train[:, i])) != len(c.categories):
            raise BenchError(f"{folder / FILES[0].name}: column {c.name!r} lacks some of its categories "
                             f"{', '.join(c.categories)}")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@DATASETS.register("adult", modality="tabular", classes=2, license="CC BY 4.0",
                   train_per_class=(22654, 7508), test_per_class=(11360, 3700))
class Adult:
    """Loads UCI Adult (income > $50K; sex and race as sensitive attributes); `data_dir` holds `adult/`."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        folder = locate("adult", FILES, self.data_dir)
        # Bump the key's version when SCHEMA or the row filter changes: cached arrays follow them.
        a = verified_cache("adult-v1", folder, FILES, _decode)
        return DatasetSplits(
            name="adult", modality="tabular", classes=list(CLASSES), schema=SCHEMA,
            train=SCHEMA.split(a["x_train"], a["y_train"]), test=SCHEMA.split(a["x_test"], a["y_test"]),
        )
