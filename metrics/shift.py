"""Accuracy under distribution shift: common image corruptions (CIFAR-10-C), and a shifted mix of the
test split's sensitive groups (tables and any other modality with groups).

| metric | needs | what |
|---|---|---|
| `corruption_accuracy` | model | mean accuracy over the 15 corruptions x 5 severities of a fixed test subset |
| `corruption_accuracy_per_corruption` | model | the same, per corruption (mean over its 5 severities): a dict |
| `group_shift_accuracy` | predictions | test accuracy reweighted to another mix of a sensitive attribute's groups |

Corruptions. The 15 common corruptions of Hendrycks & Dietterich 2019 ("Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR; RobustBench's corruption track reports the mean
accuracy over the 75 sets as here), with the severity parameters of CIFAR-10-C: the authors'
`ImageNet-C/create_c/make_cifar_c.py` (github.com/hendrycks/robustness, Apache-2.0), ported to batches
of (N, H, W, C) arrays, any H and W, C = 1 or 3. Why a port and not the `imagecorruptions` package
(bethgelab, 1.1.2, the maintained packaging of this code): its parameters are ImageNet-C's (for 224 px
images: Gaussian noise of sd 0.08-0.38 where CIFAR-10-C uses 0.04-0.10, defocus radii 3-10 px on a
32 px image, ...), it refuses images under 32 px (pneumoniamnist is 28 px), and 1.1.2 no longer imports
with current NumPy, SciPy, scikit-image and setuptools (`pkg_resources`, `np.float_`,
`scipy.ndimage.interpolation`, `multichannel=`). From that package the harness takes only its frost
textures (the six pictures of the original repository, sha256-checked below, read from the installed
package's folder without importing it). Where the published code calls something that does not exist
here, the port says so:
  - motion blur (motion_blur, and the snow layer's streaks): ImageMagick's MotionBlurImage through Wand
    in make_cifar_c.py (a system library); here imagecorruptions' NumPy reimplementation of it (a
    Gaussian-weighted sum of edge-replicating shifts along the angle), with CIFAR-10-C's radii, sigmas
    and angles;
  - the Gaussian filters (skimage.filters.gaussian): scipy.ndimage.gaussian_filter with skimage's
    defaults (mode "nearest", truncate 4), over the two image axes only; impulse noise
    (skimage.util.random_noise "s&p"): each value independently replaced with probability `amount`, by
    0 or 1 with equal odds; brightness (skimage rgb2hsv, V + c, hsv2rgb): the same map in closed form
    (scaling a pixel by V'/V leaves its hue and saturation unchanged; a black pixel becomes grey V');
  - glass blur: make_cifar_c.py's local "swap" assigns through NumPy views, so it copies pixel
    (h + dy, w + dx) onto (h, w) and leaves the other unchanged; with CIFAR-10-C's max_delta of 1 the
    offsets are -1 or 0, every read is of a pixel the descending loop has not written yet, and one
    vectorised gather per iteration gives exactly the loop's result (with other random draws);
  - sizes: the published code hard-codes 32 px (the glass-blur loop bounds, the fog fractal's 32 x 32
    map, the frost crop, the elastic parameters as multiples of IMSIZE = 32); here they come from the
    image (the fractal map is the next power of two and is cropped; the elastic multiples use the
    shorter side). At 32 x 32 this is the published definition.
The sets are therefore CIFAR-10-C's distributions, not its files (other random draws, the motion-blur
stand-in, a subset of the test split): compare strategies within the harness, not with published
CIFAR-10-C accuracies.
Grey images (C = 1, pneumoniamnist): every definition is applied to the one channel as it is applied to
each channel of an RGB image, which is what the RGB definition does to a grey image replicated to three
equal channels, channel for channel (noise is drawn per value either way). Two definitions are not per
channel: frost blends the texture's luma (ITU-R 601, imagecorruptions' rule for grey images), and JPEG
compresses a greyscale JPEG.

Input and output: uint8 images in [0, 255] (as the data sets hold them) or float images in [0, 1];
`corrupt` returns the input's shape and dtype. uint8 output is truncated, as make_cifar_c.py's
`np.uint8(...)` does; a float input is quantised to 8 bits only where the definition encodes an image
file (JPEG, pixelate). Determinism: the 75 sets are drawn from numpy Generators seeded by
(corruption_seed, corruption index, severity) alone, so every strategy and seed of a suite is scored
on the same corrupted images (the cell's seed plays no part). They are cached on disk under
`<cache>/corruptions/`, one sealed file per corruption (bench.data.seal_bytes: its sha256 is checked on
every read, and a damaged entry is rebuilt with a warning), keyed by the sha256 of the subset's images
(so by the test split's content and the subset), DEFINITIONS_VERSION and the seed.

Monotonicity in severity: the mean absolute change of the pixels grows with severity for eleven of
the corruptions (measured on 200 CIFAR-10 and 200 PneumoniaMNIST test images; tests/test_shift.py
checks it on small smooth images). Not, by definition, for four: elastic_transform (its affine jitter
shrinks from 8% to 3% of the side while the elastic displacement grows, so the change falls with
severity), frost (the image's weight falls from 1 to 0.75 while the texture's rises from 0.2 to 0.45:
the two partly cancel, and the change peaks at severity 3), glass_blur (severities 1-3 shuffle once
with growing sigma, 4-5 twice with sigma 0.25 and 0.4: the larger sigma smooths the shuffle away, so
1-3 and 4-5 are nearly level) and motion_blur at severities 3 and 4 (the same sigma of 2 px, only the
kernel's negligible tail longer: a tie, decided by the random angles). Snow's severities 2 and 3 are
close (a mean change of 24 and 25 levels on CIFAR-10) and swap on images of 16 px, too small for its streaks.

The classifier is used as `pgd_accuracy` uses it (metrics.robustness): its network in eval mode
(restored afterwards), the task model's `prepare_batch` (pixels in [0, 1]; the network normalises
itself), float32 without autocast, batches on the classifier's device, on the subset that
`pgd_accuracy` attacks with the same `samples` and `subset_seed` (so `pgd_clean_accuracy` with the same
`samples` is the clean accuracy on these very images).

Group shift. `group_shift_accuracy` is the accuracy on a population whose groups of a sensitive
attribute come in the mix `mix` (default: uniform over the groups present in the test split) while each
group's examples are distributed as in the test split: sum over groups of mix weight x the group's
accuracy, the importance-weighted estimate under subpopulation shift (Shimodaira 2000). With the
uniform mix it is the average group accuracy that Sagawa et al. 2020 ("Distributionally Robust Neural
Networks for Group Shifts", ICLR) and WILDS (Koh et al. 2021) report beside the worst-group accuracy;
the worst-group accuracy itself (the minimum over all mixes) is `worst_group_accuracy` in
metrics.groups, whose per-group accuracies this metric reuses.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.ndimage import zoom as scipy_zoom
from torch import nn

from bench.api import MODALITIES, EvalContext
from bench.data import cache_root, read_sealed, write_sealed_array
from bench.errors import BenchError
from bench.registry import METRICS
from bench.seeding import corruption_rng

from .groups import per_group_accuracy
from .robustness import UnitIntervalModel, attack_subset

IMAGE = ("image",)
# Bump when a definition below changes what it produces: part of every cache key.
DEFINITIONS_VERSION = 1
SEVERITIES = (1, 2, 3, 4, 5)
# The frost pictures in the imagecorruptions package's `frost/` folder, with their sha256. make_cifar_c.py
# draws among the first five (np.random.randint(5)); the sixth is never used.
FROST_FILES = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
}
FROST_SCALE = 0.2  # make_cifar_c.py shrinks the textures to a fifth before cropping 32 x 32
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601: OpenCV's RGB2GRAY (snow) and a grey image's frost
MEMO_ENTRIES = 4  # networks whose scores are kept in memory (one (15, 5) array each)


def _cv2() -> Any:
    try:
        import cv2  # optional dependency (the `vision` extra); imported here, not by `import metrics`
    except ImportError:
        raise BenchError("corruption metrics need OpenCV: pip install -e '.[vision]'") from None
    return cv2


# ---------------------------------------------------------------------------------------------
# Helpers of make_cifar_c.py. Arrays are float64 (N, H, W, C) in [0, 1] unless said otherwise.


def _gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian over the image axes of a batch (N, H, W, C)."""
    return gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode=mode, truncate=truncate)


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of each image of a batch (N, H, W, C) by `factor` (bilinear), cropped back to H x W."""
    h, w = x.shape[1:3]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = scipy_zoom(x[:, top:top + ch, left:left + cw], (1, factor, factor, 1), order=1)
    trim_top, trim_left = (out.shape[1] - h) // 2, (out.shape[2] - w) // 2
    return out[:, trim_top:trim_top + h, trim_left:trim_left + w]


def _motion(x: np.ndarray, radius: int, sigma: float, angles: np.ndarray) -> np.ndarray:
    """imagecorruptions' NumPy stand-in for ImageMagick's motion blur, image i along angles[i] degrees:
    the sum over i < 2 * radius + 1 of Gaussian weights (sd sigma) times the image shifted i pixels
    along the angle, edges replicated; an image stops gathering where the shift leaves it."""
    n, h, w = x.shape[:3]
    width = 2 * radius + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    rad = np.deg2rad(angles)
    py, px = width * np.sin(rad), width * np.cos(rad)
    hyp = np.hypot(py, px)
    out = np.zeros_like(x)
    inside = np.ones(n, dtype=bool)
    batch = np.arange(n)[:, None, None]
    for i in range(width):
        dy = -np.ceil(i * py / hyp - 0.5).astype(np.int64)
        dx = -np.ceil(i * px / hyp - 0.5).astype(np.int64)
        inside &= (np.abs(dy) < h) & (np.abs(dx) < w)
        rows = np.clip(np.arange(h)[None, :] - dy[:, None], 0, h - 1)
        cols = np.clip(np.arange(w)[None, :] - dx[:, None], 0, w - 1)
        shifted = x[batch, rows[:, :, None], cols[:, None, :]]
        out += np.where(inside[:, None, None, None], kernel[i] * shifted, 0.0)
    return out


def _plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """A mapsize x mapsize height map in [0, 1] by the diamond-square algorithm (make_cifar_c.py's)."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum)
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    cv2 = _cv2()
    span = np.arange(-8, 8 + 1) if radius <= 8 else np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(span, span)
    disk = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=(3, 3) if radius <= 8 else (5, 5), sigmaX=alias_blur)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8 by rounding: exact for a float image that came from uint8 (x / 255)."""
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _through_pil(x: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    """fn applied to each image as a PIL image (mode L or RGB), back to [0, 1]."""
    from PIL import Image

    u = _to_uint8(x)
    grey = u.shape[-1] == 1
    out = np.empty(u.shape, dtype=np.float64)
    for i, im in enumerate(u):
        res = np.asarray(fn(Image.fromarray(im[..., 0] if grey else im)), dtype=np.float64)
        out[i] = res.reshape(im.shape) / 255
    return out


@functools.lru_cache(maxsize=1)
def _frost_textures() -> tuple[np.ndarray, ...]:
    """The five frost pictures, RGB float in [0, 1], shrunk to a fifth (make_cifar_c.py)."""
    spec = importlib.util.find_spec("imagecorruptions")  # located, not imported: its code no longer imports
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the frost corruption needs the imagecorruptions package's textures: "
                         "pip install -e '.[vision]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    cv2 = _cv2()
    textures = []
    for name, digest in FROST_FILES.items():
        path = folder / name
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise BenchError(f"frost texture {path} cannot be read ({exc}): reinstall imagecorruptions") from None
        if hashlib.sha256(blob).hexdigest() != digest:
            raise BenchError(f"frost texture {path} does not match its sha256: reinstall imagecorruptions")
        bgr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        small = cv2.resize(bgr, (0, 0), fx=FROST_SCALE, fy=FROST_SCALE)
        textures.append(small[..., ::-1].astype(np.float64) / 255)
    return tuple(textures)


# ---------------------------------------------------------------------------------------------
# The 15 corruptions, CIFAR-10-C's parameters (make_cifar_c.py), severity index s = severity - 1.
# Each takes and returns float64 (N, H, W, C); values may leave [0, 1] (`corrupt` clips).


def gaussian_noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[s]
    return x + rng.normal(size=x.shape, scale=c)


def shot_noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = (500, 250, 100, 75, 50)[s]
    return rng.poisson(x * c) / c


def impulse_noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.01, 0.02, 0.03, 0.05, 0.07)[s]
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    out = x.copy()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return out


def defocus_blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[s]
    kernel = _disk(radius, alias_blur)
    cv2 = _cv2()
    return np.stack([cv2.filter2D(im, -1, kernel).reshape(im.shape) for im in x])


def glass_blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[s]
    n, h, w = x.shape[:3]
    x = np.floor(_gaussian(x, sigma) * 255) / 255  # np.uint8(gaussian(x) * 255)
    # Rows and columns h - delta down to delta + 1; each takes the pixel at offsets in [-delta, delta).
    rows, cols = np.arange(delta + 1, h - delta + 1), np.arange(delta + 1, w - delta + 1)
    if len(rows) and len(cols):
        batch = np.arange(n)[:, None, None]
        for _ in range(iterations):
            dy = rng.integers(-delta, delta, size=(n, len(rows), len(cols)))
            dx = rng.integers(-delta, delta, size=(n, len(rows), len(cols)))
            x[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = x[batch, rows[None, :, None] + dy,
                                                                   cols[None, None, :] + dx]
    return _gaussian(x, sigma)


def motion_blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[s]
    return _motion(x, radius, sigma, rng.uniform(-45, 45, size=len(x)))


def zoom_blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    factors = (np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
               np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01))[s]
    x = x.astype(np.float32)
    out = np.zeros_like(x)
    for factor in factors:
        out += _clipped_zoom(x, factor)
    return ((x + out) / (len(factors) + 1)).astype(np.float64)


def snow(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, blend = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))[s]
    n, h, w = x.shape[:3]
    x = x.astype(np.float32)
    layer = _clipped_zoom(rng.normal(size=(n, h, w, 1), loc=loc, scale=scale), zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8) / 255  # the 8-bit picture handed to ImageMagick
    layer = _motion(layer, radius, sigma, rng.uniform(-135, -45, size=n))
    layer = np.round(layer * 255) / 255  # and the 8-bit picture it returns
    grey = x if x.shape[-1] == 1 else (x @ LUMA.astype(np.float32))[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


def frost(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    keep, add = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))[s]
    textures = _frost_textures()
    n, h, w, c = x.shape
    out = np.empty_like(x)
    for i, k in enumerate(rng.integers(len(textures), size=n)):
        texture = textures[k]
        if texture.shape[0] <= h or texture.shape[1] <= w:  # an image larger than the texture: scale it up
            factor = 1.1 * max(h / texture.shape[0], w / texture.shape[1])
            texture = _cv2().resize(texture, (int(np.ceil(texture.shape[1] * factor)),
                                              int(np.ceil(texture.shape[0] * factor))))
        top, left = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
        crop = texture[top:top + h, left:left + w]
        out[i] = keep * x[i] + add * ((crop @ LUMA)[..., None] if c == 1 else crop)
    return out


def fog(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    strength, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[s]
    n, h, w = x.shape[:3]
    mapsize = 1 << max(1, math.ceil(math.log2(max(h, w))))  # 32 for CIFAR-10's 32 px (and 28 px) images
    out = np.empty_like(x)
    for i in range(n):
        max_val = x[i].max()
        fractal = _plasma_fractal(mapsize, decay, rng)[:h, :w, None]
        out[i] = (x[i] + strength * fractal) * max_val / (max_val + strength)
    return out


def brightness(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.05, 0.1, 0.15, 0.2, 0.3)[s]
    v = x.max(axis=-1, keepdims=True)  # HSV value
    lifted = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * lifted / np.where(v > 0, v, 1), lifted)


def contrast(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[s]
    means = x.mean(axis=(1, 2), keepdims=True)  # per image and channel
    return (x - means) * c + means


def elastic_transform(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    n, h, w, c = x.shape
    size = min(h, w)  # IMSIZE = 32 in make_cifar_c.py
    alpha, sigma, affine = ((size * 0, size * 0, size * 0.08), (size * 0.05, size * 0.2, size * 0.07),
                            (size * 0.08, size * 0.06, size * 0.06), (size * 0.1, size * 0.04, size * 0.05),
                            (size * 0.1, size * 0.03, size * 0.03))[s]
    cv2 = _cv2()
    center = np.float32((h, w)) // 2
    square = min(h, w) // 3
    pts1 = np.float32([center + square, [center[0] + square, center[1] - square], center - square])
    yy, xx, zz = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    out = np.empty_like(x)
    for i in range(n):
        pts2 = pts1 + rng.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
        matrix = cv2.getAffineTransform(pts1, pts2)
        im = cv2.warpAffine(x[i].astype(np.float32), matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        im = im.reshape(h, w, c)
        dx = (gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha)
        dy = (gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha)
        dx, dy = dx.astype(np.float32)[..., None], dy.astype(np.float32)[..., None]
        out[i] = map_coordinates(im, np.stack([yy + dy, xx + dx, zz]), order=1, mode="reflect")
    return out


def pixelate(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    c = (0.95, 0.9, 0.85, 0.75, 0.65)[s]
    h, w = x.shape[1:3]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    return _through_pil(x, lambda im: im.resize(small, Image.BOX).resize((w, h), Image.BOX))


def jpeg_compression(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    quality = (80, 65, 58, 50, 40)[s]

    def jpeg(im: Any) -> Any:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer)

    return _through_pil(x, jpeg)


# In Hendrycks & Dietterich's order (noise, blur, weather, digital).
DEFINITIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    f.__name__: f for f in (gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur,
                            zoom_blur, snow, frost, fog, brightness, contrast, elastic_transform, pixelate,
                            jpeg_compression)
}
CORRUPTIONS = tuple(DEFINITIONS)


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Corruption `name` at `severity` (1-5) of a batch of images (N, H, W, C), C = 1 or 3: uint8 in
    [0, 255] or float in [0, 1]; the result has the input's shape and dtype."""
    if name not in DEFINITIONS:
        raise BenchError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise BenchError(f"severity must be one of 1-5, got {severity!r}")
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise BenchError(f"corruptions take image batches (N, H, W, C) with C = 1 or 3, got shape {x.shape}")
    if x.dtype == np.uint8:
        f = x.astype(np.float64) / 255
    elif np.issubdtype(x.dtype, np.floating):
        f = np.clip(x.astype(np.float64), 0, 1)
    else:
        raise BenchError(f"corruptions take uint8 or float images, got {x.dtype}")
    if len(x) == 0:
        return x.copy()
    out = np.clip(DEFINITIONS[name](f, severity - 1, rng), 0, 1)
    if x.dtype == np.uint8:
        return (out * 255).astype(np.uint8)  # truncated, as np.uint8(...) in make_cifar_c.py
    return out.astype(x.dtype)


def set_rng(name: str, severity: int, seed: int = 0) -> np.random.Generator:
    """The generator of one corrupted set: (seed, corruption, severity) alone decide it."""
    return corruption_rng(seed, CORRUPTIONS.index(name), severity)


def content_key(images: np.ndarray) -> str:
    """sha256 of a uint8 image batch's shape and bytes, with the definitions' version."""
    h = hashlib.sha256(f"cifar-c v{DEFINITIONS_VERSION} {images.shape} {images.dtype}".encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def cache_path(key: str, name: str, seed: int) -> Path:
    return cache_root() / "corruptions" / f"v{DEFINITIONS_VERSION}-{key[:32]}-seed{seed}-{name}.npy"


def corrupted_sets(images: np.ndarray, name: str, seed: int = 0, persist: bool = True) -> np.ndarray:
    """The 5 severities of corruption `name` of a uint8 batch (N, H, W, C): uint8 (5, N, H, W, C), from
    the disk cache (digest-checked), else built (and cached with `persist`). Not kept in memory: one
    corruption's sets at a time (2,000 CIFAR images: 31 MB of 460 MB for all 15)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise BenchError(f"corrupted sets are built from uint8 images, got {images.dtype}")
    path = cache_path(content_key(images), name, seed)
    sets = None
    blob = read_sealed(path, "corrupted-image") if persist else None
    if blob is not None:
        try:
            sets = np.load(io.BytesIO(blob), allow_pickle=False)
        except (OSError, ValueError):
            sets = None
        if sets is not None and (sets.shape != (len(SEVERITIES), *images.shape) or sets.dtype != np.uint8):
            sets = None  # not what this key should hold: rebuilt and replaced
    if sets is None:
        sets = np.stack([corrupt(images, name, sev, set_rng(name, sev, seed)) for sev in SEVERITIES])
        if persist:
            write_sealed_array(path, sets)
    return sets


# ---------------------------------------------------------------------------------------------
# The metrics.


def _applies(ctx: EvalContext) -> bool:
    """Only torch classifiers (bench.training.Classifier) are scored on corrupted images."""
    return isinstance(getattr(ctx.classifier, "module", None), nn.Module) and len(ctx.y_true) > 0


def _model_key(module: nn.Module) -> str:
    """The network object and its weights: the same key means the same predictions."""
    h = hashlib.sha256(f"{id(module)} {type(module).__qualname__}".encode())
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


_SCORES: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()  # (model, images, labels, seed) -> scores


def _accuracy(model: nn.Module, clf: Any, images: np.ndarray, y: torch.Tensor, batch_size: int) -> float:
    correct = 0
    for start in range(0, len(images), batch_size):
        xb = clf.spec.to_tensor(images[start:start + batch_size]).to(clf.device)
        xb = clf.spec.prepare_batch(xb, train=False, generator=None).float()
        if xb.dim() != 4 or float(xb.min()) < 0 or float(xb.max()) > 1:
            raise BenchError("corruption metrics need image batches (N, C, H, W) with pixels in [0, 1] from the "
                             f"task model's prepare_batch; got shape {tuple(xb.shape)}, range "
                             f"[{float(xb.min()):.3g}, {float(xb.max()):.3g}]")
        correct += int((model(xb).argmax(1) == y[start:start + batch_size]).sum())
    return correct / len(images)


def set_accuracies(ctx: EvalContext, samples: int = 200, subset_seed: int = 0, corruption_seed: int = 0,
                   batch_size: int = 250) -> np.ndarray | None:
    """Accuracy on each corrupted set, (15 corruptions, 5 severities) in CORRUPTIONS' order, on the
    subset pgd_accuracy attacks; None for a classifier without a torch network. Memoised in memory by
    the network and its weights, so the two corruption metrics of a cell score the sets once."""
    if not _applies(ctx):
        return None
    clf = ctx.classifier
    idx = attack_subset(len(ctx.y_true), samples, subset_seed)
    images = np.asarray(ctx.task.test.x)[idx]
    labels = np.asarray(ctx.y_true, dtype=np.int64)[idx]
    memo = (_model_key(clf.module), str(clf.device), content_key(images),
            hashlib.sha256(labels.tobytes()).hexdigest(), corruption_seed)
    if memo in _SCORES:
        _SCORES.move_to_end(memo)
        return _SCORES[memo]
    recipe = getattr(clf, "recipe", None)
    model = UnitIntervalModel(clf.module, channels_last=bool(getattr(recipe, "channels_last", False)))
    was_training = clf.module.training
    y = torch.as_tensor(labels).to(clf.device)
    scores = np.zeros((len(CORRUPTIONS), len(SEVERITIES)))
    try:
        model.eval()  # BatchNorm statistics frozen, dropout off
        with torch.no_grad():
            for i, name in enumerate(CORRUPTIONS):
                sets = corrupted_sets(images, name, corruption_seed)
                for j in range(len(SEVERITIES)):
                    scores[i, j] = _accuracy(model, clf, sets[j], y, batch_size)
    finally:
        clf.module.train(was_training)  # the network's mode as it was before
    _SCORES[memo] = scores
    while len(_SCORES) > MEMO_ENTRIES:
        _SCORES.popitem(last=False)
    return scores


@METRICS.register("corruption_accuracy", range=(0, 1), higher_is_better=True, modalities=IMAGE, needs="model")
def corruption_accuracy(ctx: EvalContext, samples: int = 200, subset_seed: int = 0, corruption_seed: int = 0,
                        batch_size: int = 250) -> float | None:
    """Mean accuracy over CIFAR-10-C's 15 corruptions x 5 severities of `samples` test images (the
    subset pgd_accuracy attacks); None for a classifier without a torch network.

    corruption_seed: the seed of the corrupted sets (the same for every cell); batch_size: images per
    forward pass."""
    scores = set_accuracies(ctx, samples, subset_seed, corruption_seed, batch_size)
    return None if scores is None else float(scores.mean())


@METRICS.register("corruption_accuracy_per_corruption", range=(0, 1), higher_is_better=True, modalities=IMAGE,
                  needs="model")
def corruption_accuracy_per_corruption(ctx: EvalContext, samples: int = 200, subset_seed: int = 0,
                                       corruption_seed: int = 0, batch_size: int = 250) -> dict[str, float] | None:
    """corruption_accuracy per corruption (mean over its 5 severities), keyed by the corruption's name."""
    scores = set_accuracies(ctx, samples, subset_seed, corruption_seed, batch_size)
    return None if scores is None else {name: float(row.mean()) for name, row in zip(CORRUPTIONS, scores)}


@METRICS.register("group_shift_accuracy", range=(0, 1), higher_is_better=True, modalities=MODALITIES)
def group_shift_accuracy(ctx: EvalContext, attribute: str = "race",
                         mix: str | Mapping[str, float] = "uniform") -> float | None:
    """Test accuracy reweighted to the group mix `mix` of the sensitive attribute `attribute`: the sum
    over groups of weight x the group's accuracy (per_group_accuracy). `mix`: "uniform" (every group
    present in the test split weighs the same: the average group accuracy), or weights by group value
    (normalised to sum 1; a group left out weighs 0). None when the test split has no such attribute."""
    per_group = per_group_accuracy(ctx, attribute=attribute)
    if not per_group:
        return None
    if isinstance(mix, str):
        if mix != "uniform":
            raise BenchError(f"group_shift_accuracy: mix must be 'uniform' or weights by group, got {mix!r}")
        weights = {g: 1.0 for g in per_group}
    elif isinstance(mix, Mapping):
        weights = {str(g): float(w) for g, w in mix.items()}
        if any(not math.isfinite(w) or w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise BenchError(f"group_shift_accuracy: weights must be finite, non-negative and not all 0, got {mix}")
        missing = sorted(g for g, w in weights.items() if w > 0 and g not in per_group)
        if missing:
            raise BenchError(f"group_shift_accuracy: groups {missing} of {attribute!r} weigh in the mix but are not "
                             f"in the test split, whose groups are {sorted(per_group)}")
    else:
        raise BenchError(f"group_shift_accuracy: mix must be 'uniform' or weights by group, got {mix!r}")
    total = sum(weights.values())
    return float(sum(w * per_group[g] for g, w in weights.items() if w > 0) / total)
