"""A cheap class-conditional generator for the CPU: a Gaussian mixture per class in the PCA space of
the flattened inputs (images or numeric tables). It supports example-to-example variation: a seed is
projected, moved towards a fresh sample of the target class, and decoded. The diffusion generators
for images are separate (they need far more compute)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from bench.api import Conditions, DatasetInfo, Split
from bench.registry import GENERATORS


@GENERATORS.register("pca_gmm", modalities=("image", "tabular", "vector"))
@dataclass
class PCAGaussianMixture:
    """Per-class Gaussian mixtures (scikit-learn) on the first `components` principal components.

    Sampling with seeds: z = (1 - strength) * pca(seed) + strength * z_class, z_class drawn from the
    target class's mixture, then decoded by the inverse PCA (values clipped to the input's range and,
    for uint8 images, rounded)."""

    components: Annotated[int, Field(ge=1)] = 64  # PCA dimensions (at most n_examples - 1 and the input dimension)
    mixtures: Annotated[int, Field(ge=1)] = 4  # mixture components per class (at most half the class's examples)
    covariance: Literal["full", "tied", "diag", "spherical"] = "diag"  # scikit-learn covariance_type: full, tied, diag, spherical

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "PCAGaussianMixture":
        x = np.asarray(real.x)
        self.shape_, self.dtype_ = x.shape[1:], x.dtype
        flat = x.reshape(len(x), -1).astype(np.float64)
        self.low_, self.high_ = flat.min(axis=0), flat.max(axis=0)
        k = max(1, min(self.components, flat.shape[1], len(flat) - 1))
        self.pca_ = PCA(n_components=k, random_state=seed).fit(flat)
        z = self.pca_.transform(flat)
        y = np.asarray(real.y)
        self.mixtures_ = {}
        for c in range(info.num_classes):
            zc = z[y == c]
            if len(zc) == 0:
                continue
            m = max(1, min(self.mixtures, len(zc) // 2))
            self.mixtures_[c] = GaussianMixture(m, covariance_type=self.covariance, reg_covar=1e-3,
                                                random_state=seed).fit(zc)
        return self

    def _class_codes(self, c: int, n: int, rng: np.random.Generator) -> np.ndarray:
        gmm = self.mixtures_[c]
        comp = rng.choice(len(gmm.weights_), size=n, p=gmm.weights_)
        noise = rng.standard_normal((n, gmm.means_.shape[1]))
        if self.covariance == "full":
            scale = np.linalg.cholesky(gmm.covariances_)[comp]
            return gmm.means_[comp] + np.einsum("nij,nj->ni", scale, noise)
        if self.covariance == "tied":
            return gmm.means_[comp] + noise @ np.linalg.cholesky(gmm.covariances_).T
        var = gmm.covariances_[comp]
        return gmm.means_[comp] + noise * np.sqrt(var if var.ndim == 2 else var[:, None])

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        labels = np.asarray(conditions.labels, dtype=np.int64)
        z = np.empty((n, self.pca_.n_components_))
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            z[idx] = self._class_codes(int(c), len(idx), rng)
        if conditions.seeds is not None:
            seeds = np.asarray(conditions.seeds).reshape(n, -1).astype(np.float64)
            s = conditions.strength
            z = (1 - s) * self.pca_.transform(seeds) + s * z
        flat = np.clip(self.pca_.inverse_transform(z), self.low_, self.high_)
        if np.issubdtype(self.dtype_, np.integer):
            flat = np.rint(flat)
        return Split(flat.reshape(n, *self.shape_).astype(self.dtype_), labels)
