"""Table generators from the Synthetic Data Vault (sdv): CTGAN (Xu et al. 2019) and the Gaussian copula.

Both are fitted on the real budget as one table: the schema's columns (categories by name) plus the
label, so the label is just another categorical column that samples can be conditioned on. Sampling
uses sdv's conditional sampling (`sample_from_conditions`): every distinct combination of target
label and attribute values in `Conditions` becomes one `sdv.sampling.Condition`. CTGAN conditions a
categorical column through its conditional vector and meets further columns by rejection sampling,
the copula conditions exactly; where sdv cannot produce a combination within its tries (a category
pair the model never makes), those rows are drawn with the label alone, and the generator counts them
(`fallbacks_`).

`Conditions.attributes` maps a column name to one category code per row, NaN (or a negative code)
meaning "no constraint" for that row. Seed examples are not used: tables are targeted through their
attribute values (the active loop derives them from the uncertain region), not by perturbing a row.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.device import resolve_device  # auto: CUDA when present; cuda without CUDA is a BenchError
from bench.errors import BenchError
from bench.registry import GENERATORS
from bench.table import LABEL_COLUMN, TableSchema

TABLE = "table"  # sdv's name for the single table


def sdv_metadata(schema: TableSchema) -> Any:
    from sdv.metadata import Metadata

    columns = {c.name: {"sdtype": "categorical" if c.kind == "categorical" else "numerical"} for c in schema.columns}
    columns[LABEL_COLUMN] = {"sdtype": "categorical"}
    return Metadata.load_from_dict({"tables": {TABLE: {"columns": columns}}})


@contextlib.contextmanager
def _quiet_sdv():
    """sdv prints tqdm bars to stderr and warns about its own choices; the harness has its own progress."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class _SDVGenerator:
    """What CTGAN and the copula share: the table round trip, seeding, and conditional sampling."""

    max_tries_per_batch: int = 100  # sdv's rejection-sampling tries per batch before a condition is given up
    sample_batch_size: int = 500  # rows drawn per try: a rare combination needs many candidates per try


    def _synthesizer(self, metadata: Any) -> Any:
        raise NotImplementedError

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "_SDVGenerator":
        if info.schema is None:
            raise BenchError(f"generator {type(self).__name__} needs a table (a data set with a schema)")
        self.schema_, self.num_classes_ = info.schema, info.num_classes
        self.classes_ = [str(c) for c in range(info.num_classes)]  # labels by code: names need not be unique strings
        frame = self.schema_.to_frame(real.x, real.y, self.classes_)
        # CTGAN draws from numpy's and torch's global generators while it trains: seed both, put them back.
        state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]), _quiet_sdv():
                np.random.seed(seed)
                torch.manual_seed(seed)
                self.synthesizer_ = self._synthesizer(sdv_metadata(self.schema_))
                self.synthesizer_.fit({TABLE: frame})
        finally:
            np.random.set_state(state)
        self.fallbacks_ = 0
        return self

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        from sdv.sampling import Condition

        labels = np.asarray(conditions.labels, dtype=np.int64)
        if labels.shape != (n,):
            raise ValueError(f"need {n} labels, got shape {labels.shape}")
        attrs = {k: np.asarray(v, dtype=np.float64) for k, v in (conditions.attributes or {}).items()}
        for col, v in attrs.items():
            if self.schema_.column(col).kind != "categorical" or v.shape != (n,):
                raise ValueError(f"attribute conditions need one code per row of a categorical column, not {col!r}")
        # One Condition per distinct (label, attribute values) combination; the rows come back grouped
        # by condition, so each group's rows are put back at its rows' positions.
        keys = [tuple([int(labels[i])] + [int(v[i]) if np.isfinite(v[i]) and v[i] >= 0 else -1 for v in attrs.values()])
                for i in range(n)]
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        x = np.empty((n, len(self.schema_.columns)), dtype=np.float64)
        # sdv keeps its own random state (reseeded here through its private setter: the public
        # reset_sampling() only returns to one fixed seed), and the copula draws from numpy's global one.
        # reset_sampling() also rewinds the random states of sdv's column transformers.
        seed = int(rng.integers(2**31 - 1))
        self.synthesizer_.reset_sampling()
        self.synthesizer_._set_random_state(seed)
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            for key, rows in groups.items():
                values = {LABEL_COLUMN: self.classes_[key[0]]}
                for (col, _), code in zip(attrs.items(), key[1:]):
                    if code >= 0:
                        values[col] = self.schema_.column(col).categories[code]
                frame = self._sample_condition(Condition(num_rows=len(rows), column_values=values), values)
                x[rows], _ = self.schema_.from_frame(frame[TABLE].drop(columns=[LABEL_COLUMN]))
        finally:
            np.random.set_state(state)
        return Split(self.schema_.clean(x), labels)

    def _sample_condition(self, condition: Any, values: dict[str, str]) -> Any:
        from sdv.sampling import Condition

        with _quiet_sdv():
            try:
                return self.synthesizer_.sample_from_conditions([condition], max_tries_per_batch=self.max_tries_per_batch,
                                                                batch_size=max(self.sample_batch_size, condition.get_num_rows()))
            except ValueError:  # sdv could not produce rows meeting every value: keep only the label
                if len(values) == 1:
                    raise
                self.fallbacks_ += condition.get_num_rows()
                only_label = Condition(num_rows=condition.get_num_rows(), column_values={LABEL_COLUMN: values[LABEL_COLUMN]})
                return self.synthesizer_.sample_from_conditions([only_label], max_tries_per_batch=self.max_tries_per_batch)


@GENERATORS.register("ctgan", modalities=("tabular",))
@dataclass
class CTGAN(_SDVGenerator):
    """sdv's CTGANSynthesizer (mode-specific normalisation of numbers, conditional vector and
    training-by-sampling for categories, WGAN-GP with PacGAN). sdv's defaults except `epochs`."""

    epochs: int = 300  # passes over the real rows (with fewer rows than batch_size: one step each)
    batch_size: int = 500  # rows per step; must be a multiple of pac
    pac: int = 10  # rows the discriminator judges together (PacGAN), against mode collapse
    embedding_dim: int = 128
    generator_dim: tuple[int, ...] = (256, 256)
    discriminator_dim: tuple[int, ...] = (256, 256)
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    device: str = "auto"  # auto (CUDA when present), cpu or cuda: follows the run's --device; not in the cache key

    def __post_init__(self) -> None:
        self.generator_dim = tuple(int(d) for d in self.generator_dim)  # YAML gives lists
        self.discriminator_dim = tuple(int(d) for d in self.discriminator_dim)
        if self.epochs < 1 or self.batch_size % self.pac:
            raise ValueError("epochs must be >= 1 and batch_size a multiple of pac")

    def _synthesizer(self, metadata: Any) -> Any:
        from sdv.single_table import CTGANSynthesizer

        return CTGANSynthesizer(metadata, epochs=self.epochs, batch_size=self.batch_size, pac=self.pac,
                                embedding_dim=self.embedding_dim, generator_dim=self.generator_dim,
                                discriminator_dim=self.discriminator_dim, generator_lr=self.generator_lr,
                                discriminator_lr=self.discriminator_lr,
                                enable_gpu=resolve_device(self.device).type == "cuda")


@GENERATORS.register("gaussian_copula", modalities=("tabular",))
@dataclass
class GaussianCopula(_SDVGenerator):
    """sdv's GaussianCopulaSynthesizer: each column's marginal (`default_distribution`) and a Gaussian
    copula for their dependence; fits in about a second, a cheap second generator."""

    default_distribution: str = "beta"  # sdv's default marginal for numbers (norm, beta, truncnorm, uniform, ...)

    def _synthesizer(self, metadata: Any) -> Any:
        from sdv.single_table import GaussianCopulaSynthesizer

        return GaussianCopulaSynthesizer(metadata, default_distribution=self.default_distribution)
