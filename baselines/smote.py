"""`smote`: SMOTE (imbalanced-learn; SMOTE-NC for tables with categorical columns) oversampling of
every class of the real budget by the suite's synthetic budget, then training on real + synthetic with
the same class-weighted mixing.

For images SMOTE interpolates flattened pixels. Interpolating in a linear embedding (PCA) would give
the same images up to the discarded components, and in a nonlinear embedding the new points could
not be turned back into images for the task model, so pixels are the space used.

For text SMOTE interpolates in the frozen sentence encoder's embedding space (the task model's `embed`
hook, bench.synthesis.embedding_view). The text task models classify those embeddings, so an
interpolated embedding is a valid training input even though no text corresponds to it: the synthetic
examples are embeddings, not texts (text-quality metrics such as BLEU and BERTScore skip them;
embedding-space coverage and density include them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from imblearn.over_sampling import SMOTE, SMOTENC
from pydantic import Field

from bench.api import Split, StrategyResult, TaskView
from bench.registry import STRATEGIES
from bench.synthesis import SynthesisStrategy, embedded_examples, embedding_view
from bench.table import TableSchema


def smote_samples(real: Split, per_class: int, k_neighbors: int, seed: int, schema: TableSchema | None = None) -> Split:
    """`per_class` new examples for every class, interpolated between same-class neighbours. For a
    table with categorical columns, SMOTE-NC: numbers interpolated, each category taken by majority
    vote of the neighbours (neighbours found with the categories' mismatch costed by the numbers'
    median standard deviation)."""
    x = np.asarray(real.x)
    flat = x.reshape(len(x), -1).astype(np.float64 if schema is not None else np.float32)
    y = np.asarray(real.y)
    classes, counts = np.unique(y, return_counts=True)
    k = int(max(1, min(k_neighbors, counts.min() - 1)))
    target = {int(c): int(n) + per_class for c, n in zip(classes, counts)}
    if schema is not None and schema.categorical and schema.numeric:
        sampler = SMOTENC(categorical_features=schema.categorical, sampling_strategy=target, k_neighbors=k, random_state=seed)
    else:  # SMOTE-NC needs numbers to interpolate; an all-categorical table would need SMOTEN
        sampler = SMOTE(sampling_strategy=target, k_neighbors=k, random_state=seed)
    xs, ys = sampler.fit_resample(flat, y)
    new, labels = xs[len(flat):], ys[len(flat):]
    if schema is not None:
        return Split(schema.clean(new), labels.astype(np.int64))
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        new = np.clip(np.rint(new), info.min, info.max)
    return Split(new.astype(x.dtype).reshape(len(new), *x.shape[1:]), labels.astype(np.int64))


@STRATEGIES.register("smote", kind="baseline", synthesises=True, modalities=("image", "tabular", "vector", "text"))
@dataclass
class Smote(SynthesisStrategy):
    k_neighbors: Annotated[int, Field(ge=1)] = 5  # same-class neighbours to interpolate between (capped by class size - 1)

    def run(self, task: TaskView) -> StrategyResult:
        text = task.data.modality == "text"
        real = embedding_view(task, task.train) if text else task.train
        synthetic = smote_samples(real, self.per_class(task), self.k_neighbors, task.seed,
                                  task.data.schema)
        if text:
            synthetic = embedded_examples(synthetic)
        clf = self.train(task, synthetic, label="smote")
        return StrategyResult(clf, synthetic=synthetic, log={
            "real_examples": len(task.train), "synthetic_examples": len(synthetic), "mix_ratio": self.mix(task),
            "best_epoch": clf.best_epoch, "history": clf.history,
        })
