"""CIFAR-10 (Krizhevsky 2009): 50,000 training and 10,000 test 32x32 RGB images in 10 classes,
read from the Hugging Face parquet export (`img` = PNG bytes, `label` 0-9) and decoded once into a
cached uint8 array of shape (N, 32, 32, 3)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.api import DatasetSplits, Split
from bench.data import DataFile, locate, verified_cache
from bench.errors import BenchError
from bench.registry import DATASETS

_SOURCE = "https://huggingface.co/datasets/uoft-cs/cifar10/resolve/main/plain_text"
FILES = (
    DataFile("train-00000-of-00001.parquet", "cc7492a9e769a02e1f8767fc8f40506c552e38605ae8cd88e22a2287a96fc795",
             f"{_SOURCE}/train-00000-of-00001.parquet"),
    DataFile("test-00000-of-00001.parquet", "423fbf27a2392f8ec098fa30f20ba7ed2ea8d707ead3ad1706b10a0b9884d93d",
             f"{_SOURCE}/test-00000-of-00001.parquet"),
)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _decode_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq
    from PIL import Image

    try:
        table = pq.read_table(path, columns=["img", "label"])
        png = table.column("img").combine_chunks().field("bytes").to_pylist()
        images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in png])
    except Exception as exc:  # pyarrow and PIL raise many types for damaged files
        raise BenchError(f"cannot decode {path}: {type(exc).__name__}: {exc}") from None
    labels = table.column("label").to_numpy().astype(np.int64)
    return images, labels


def _decode(folder: Path) -> dict[str, np.ndarray]:
    x_train, y_train = _decode_parquet(folder / FILES[0].name)
    x_test, y_test = _decode_parquet(folder / FILES[1].name)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@DATASETS.register("cifar10", modality="image", classes=10, license="see Krizhevsky 2009 (free research use)",
                   train_per_class=(5000,) * 10, test_per_class=(1000,) * 10)
class Cifar10:
    """Loads CIFAR-10; `data_dir` is the folder that holds a `cifar10/` sub-folder (see bench.data)."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        folder = locate("cifar10", FILES, self.data_dir)
        a = verified_cache("cifar10", folder, FILES, _decode)
        return DatasetSplits(name="cifar10", modality="image", classes=list(CLASSES),
                             train=Split(a["x_train"], a["y_train"]), test=Split(a["x_test"], a["y_test"]))
