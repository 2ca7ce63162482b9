"""How tabular data is held: one float64 array per split plus a schema that says what each column is.

A table's `Split.x` is a float64 array (N, D) with one column per feature, in schema order:
  - numeric columns hold their values (integers as whole floats when `integer`);
  - categorical columns hold the category's code, 0..k-1, an index into `categories`.
Arrays keep every generic part of the harness (subsets, concatenation, fingerprints, the generator
cache) modality-free; the schema, in `DatasetSplits.schema`, is what the table-aware parts read:
the task model's one-hot encoding, SMOTE-NC's categorical columns, the sdv generators' metadata, the
fairness audit's sensitive attributes and the table-quality metrics.

`low` and `high` of a numeric column are its public domain (from the data set's documentation, not
computed from the rows), so a differentially private generator can scale by them without spending
privacy on the data's own range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LABEL_COLUMN = "label"  # the label's column name in data frames handed to table libraries


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "numeric" or "categorical"
    categories: tuple[str, ...] = ()  # categorical: code i means categories[i]
    integer: bool = False  # numeric: whole numbers (generators' samples are rounded)
    low: float | None = None  # numeric: public lower bound of the domain
    high: float | None = None  # numeric: public upper bound of the domain

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"column {self.name!r}: kind must be numeric or categorical, not {self.kind!r}")
        if self.kind == "categorical" and len(self.categories) < 1:
            raise ValueError(f"categorical column {self.name!r} needs its categories")


def whole_numbers(name: str, low: float, high: float) -> Column:
    """A numeric column of whole numbers in the public domain [low, high]."""
    return Column(name, "numeric", integer=True, low=low, high=high)


@dataclass(frozen=True)
class Sensitive:
    """A sensitive attribute, read from one column: a categorical column's categories are its groups;
    a numeric column is cut at `bins` (group i holds bins[i-1] <= value < bins[i]) into `names`."""

    column: str
    bins: tuple[float, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    columns: tuple[Column, ...]
    sensitive: dict[str, Sensitive] = field(default_factory=dict)  # attribute name -> where it is read

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or LABEL_COLUMN in names:
            raise ValueError(f"column names must be unique and not {LABEL_COLUMN!r}: {names}")
        for attr, s in self.sensitive.items():
            col = self.column(s.column)
            if col.kind == "numeric" and len(s.names) != len(s.bins) + 1:
                raise ValueError(f"sensitive attribute {attr!r}: {len(s.bins)} bins need {len(s.bins) + 1} names")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r}; columns: {', '.join(self.names)}")

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def categorical(self) -> list[int]:
        """Indices of the categorical columns."""
        return [i for i, c in enumerate(self.columns) if c.kind == "categorical"]

    @property
    def numeric(self) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c.kind == "numeric"]

    def groups(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each sensitive attribute's group name per row of `x` (strings, so results read plainly)."""
        x = np.asarray(x, dtype=np.float64)
        out = {}
        for attr, s in self.sensitive.items():
            col = self.column(s.column)
            values = x[:, self.index(s.column)]
            if col.kind == "categorical":
                out[attr] = np.asarray(col.categories, dtype=object)[np.clip(np.rint(values).astype(int), 0, len(col.categories) - 1)]
            else:
                out[attr] = np.asarray(s.names, dtype=object)[np.digitize(values, s.bins)]
        return {k: v.astype(str) for k, v in out.items()}

    def split(self, x: np.ndarray, y: np.ndarray) -> Any:
        """A bench.data.Split of these rows with their sensitive attributes as groups."""
        from bench.api import Split

        return Split(x, y, groups=self.groups(x))

    def out_of_domain(self, x: np.ndarray) -> list[str]:
        """Names of the numeric columns with a value outside [low, high], or not whole where `integer`."""
        x = np.asarray(x, dtype=np.float64)
        bad = []
        for i in self.numeric:
            c, v = self.columns[i], x[:, i]
            if ((c.low is not None and np.any(v < c.low)) or (c.high is not None and np.any(v > c.high))
                    or (c.integer and np.any(v != np.rint(v)))):
                bad.append(c.name)
        return bad

    def clean(self, x: np.ndarray) -> np.ndarray:
        """Generated rows made valid: category codes rounded into range, integer columns rounded,
        numbers clipped to their public domain."""
        x = np.array(x, dtype=np.float64, copy=True)
        for i, c in enumerate(self.columns):
            if c.kind == "categorical":
                x[:, i] = np.clip(np.rint(x[:, i]), 0, len(c.categories) - 1)
            else:
                if c.integer:
                    x[:, i] = np.rint(x[:, i])
                if c.low is not None or c.high is not None:
                    x[:, i] = np.clip(x[:, i], c.low, c.high)
        return x

    def to_frame(self, x: np.ndarray, y: np.ndarray | None = None, classes: list[str] | None = None) -> Any:
        """A pandas DataFrame with category names in categorical columns (and the label, named
        `LABEL_COLUMN`, by class name when `classes` is given, else by code as a string)."""
        import pandas as pd

        x = np.asarray(x, dtype=np.float64)
        data: dict[str, Any] = {}
        for i, c in enumerate(self.columns):
            if c.kind == "categorical":
                data[c.name] = np.asarray(c.categories, dtype=object)[np.clip(np.rint(x[:, i]).astype(int), 0, len(c.categories) - 1)]
            else:
                data[c.name] = np.rint(x[:, i]).astype(np.int64) if c.integer else x[:, i]
        if y is not None:
            names = classes if classes is not None else [str(k) for k in range(int(np.max(y, initial=0)) + 1)]
            data[LABEL_COLUMN] = np.asarray(names, dtype=object)[np.asarray(y, dtype=np.int64)]
        return pd.DataFrame(data)

    def from_frame(self, frame: Any, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The inverse of `to_frame`: (x, y), y None when the frame has no label column. An unknown
        category is a ValueError naming it."""
        x = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        for i, c in enumerate(self.columns):
            if c.kind == "categorical":
                x[:, i] = codes(frame[c.name].astype(str).to_numpy(), c.categories, c.name)
            else:
                x[:, i] = frame[c.name].to_numpy(dtype=np.float64)
        y = None
        if LABEL_COLUMN in frame:
            names = classes if classes is not None else sorted(set(frame[LABEL_COLUMN].astype(str)), key=int)
            y = codes(frame[LABEL_COLUMN].astype(str).to_numpy(), tuple(names), LABEL_COLUMN).astype(np.int64)
        return x, y


def codes(values: np.ndarray, categories: tuple[str, ...], what: str) -> np.ndarray:
    """Each value's index in `categories`; an unknown value is a ValueError naming it."""
    lookup = {c: i for i, c in enumerate(categories)}
    try:
        return np.fromiter((lookup[v] for v in values), dtype=np.float64, count=len(values))
    except KeyError as exc:
        raise ValueError(f"column {what!r}: unknown category {exc.args[0]!r} (known: {', '.join(categories)})") from None
