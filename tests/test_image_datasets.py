"""PneumoniaMNIST and UTKFace loaders (shapes, dtypes, the published class counts, the UTKFace split and
its race groups, checksum and consistency errors), a one-channel task end to end, and the group
metrics (balanced, per-group and worst-group accuracy) by hand."""
from __future__ import annotations

import hashlib
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from bench.api import EvalContext, Split
from bench.benchmarks.datasets import utkface
from bench.benchmarks.datasets.pneumoniamnist import PneumoniaMNIST
from bench.cells import load_dataset
from bench.config import NamedSpec, TrainRecipe
from bench.data import SHARED_DATA_DIR
from bench.errors import BenchError
from bench.evaluation import evaluate
from bench.registry import DATASETS, METRICS
from bench.task import Task


@pytest.fixture(scope="module")
def pneumonia():
    return load_dataset(NamedSpec(name="pneumoniamnist"), data_dir=None)


@pytest.fixture(scope="module")
def faces():
    return load_dataset(NamedSpec(name="utkface"), data_dir=None)


def test_pneumoniamnist_official_splits(pneumonia):
    assert DATASETS.meta("pneumoniamnist")["modality"] == "image" and pneumonia.classes == ["normal", "pneumonia"]
    for split, n, counts in ((pneumonia.train, 4708, [1214, 3494]), (pneumonia.test, 624, [234, 390])):
        assert split.x.shape == (n, 28, 28, 1) and split.x.dtype == np.uint8
        assert split.y.dtype == np.int64 and np.bincount(split.y).tolist() == counts
        assert split.groups == {}
    assert pneumonia.train.x.max() == 255  # raw grey levels, not rescaled


def test_utkface_seeded_split_with_race_groups(faces):
    assert DATASETS.meta("utkface")["modality"] == "image" and faces.classes == ["male", "female"]
    assert len(faces.train) == 7822 and len(faces.test) == 1956  # 9,778 images, 20% test
    assert (np.bincount(faces.train.y) + np.bincount(faces.test.y)).tolist() == [4372, 5406]
    for split in (faces.train, faces.test):
        assert split.x.shape == (len(split), 32, 32, 3) and split.x.dtype == np.uint8
        assert set(split.groups) == {"race"} and len(split.groups["race"]) == len(split.y)
        assert set(np.unique(split.groups["race"])) == {"white", "black", "asian", "indian", "others"}
    # Stratified on gender x race: each of the 10 cells keeps 20% of its images in the test split (+-1).
    for g in (0, 1):
        for race in utkface.RACES:
            n_test = int(((faces.test.y == g) & (faces.test.groups["race"] == race)).sum())
            n_all = n_test + int(((faces.train.y == g) & (faces.train.groups["race"] == race)).sum())
            assert abs(n_test - 0.2 * n_all) <= 1
    # Race totals over both splits are UTKFace crop_part1's.
    races = np.concatenate([faces.train.groups["race"], faces.test.groups["race"]])
    assert [int((races == r).sum()) for r in utkface.RACES] == [5265, 405, 1553, 1452, 1103]


def test_utkface_split_is_pinned():
    # The test split must not change silently (e.g. with a scikit-learn release): every score would.
    with np.load(SHARED_DATA_DIR / "utkface" / utkface.FILES[0].name) as z:
        strata = z["gender"].astype(np.int64) * 5 + z["race"]
    train, test = utkface.split_indices(strata)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 9778
    assert hashlib.sha256(test.astype(np.int64).tobytes()).hexdigest().startswith("275dacdc9ed290e5")


def test_a_damaged_file_is_an_error_naming_it(tmp_path):
    folder = tmp_path / "pneumoniamnist"
    folder.mkdir()
    shutil.copy(SHARED_DATA_DIR / "pneumoniamnist" / "pneumoniamnist.npz", folder)
    (folder / "pneumoniamnist.npz").chmod(0o644)
    with open(folder / "pneumoniamnist.npz", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BenchError, match=r"pneumoniamnist\.npz has sha256"):
        PneumoniaMNIST(data_dir=str(tmp_path)).load()


def test_utkface_labels_must_match_the_archive(tmp_path):
    names = np.array(["1_0_0_a.jpg", "2_1_2_b.jpg", "3_0_4_c.jpg"])
    np.savez(tmp_path / utkface.FILES[0].name, images=np.zeros((3, 32, 32, 3), np.uint8), filename=names,
             age=np.array([1, 2, 3]), gender=np.array([0, 1, 0]), race=np.array([0, 2, 4]))
    rows = ["file,age,gender,race", "2_1_2_b.jpg,2,1,2", "1_0_0_a.jpg,1,0,0", "3_0_4_c.jpg,3,0,4"]  # wrong order
    (tmp_path / utkface.FILES[1].name).write_text("\n".join(rows) + "\n")
    with pytest.raises(BenchError, match="does not match"):
        utkface._decode(tmp_path)


def test_one_channel_images_train_and_are_attacked(pneumonia):
    task = Task.build(pneumonia, budget=5, val_per_class=5, seed=0, test_per_class=5,
                      model=NamedSpec(name="small_cnn", params={"width": 4}), recipe=TrainRecipe(epochs=1, batch_size=16))
    clf = task.fit()
    assert clf.module.features[1][0].in_channels == 1
    probs = clf.predict_proba(task.test.x)
    assert probs.shape == (10, 2)
    ctx = EvalContext(task=task, classifier=clf, y_true=task.test.y, probs=probs, synthetic=None)
    assert METRICS.get("pgd_accuracy")(ctx, samples=10) <= METRICS.get("pgd_clean_accuracy")(ctx, samples=10)


# Group metrics by hand: five test examples, predictions 0, 1, 1, 1, 0 (four right).
P = [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]]
Y = [0, 1, 1, 1, 1]


def ctx(groups: dict[str, np.ndarray] | None = None) -> EvalContext:
    test = Split(x=np.zeros((5, 1)), y=np.asarray(Y), groups=groups or {})
    task = SimpleNamespace(test=test, data=SimpleNamespace(classes=["a", "b"]))
    return EvalContext(task=task, classifier=None, y_true=np.asarray(Y), probs=np.asarray(P), synthetic=None)


def test_balanced_accuracy_by_hand():
    # recall of class 0: 1/1, of class 1: 3/4 -> (1 + 0.75) / 2, whereas accuracy is 0.8
    assert METRICS.get("balanced_accuracy")(ctx()) == pytest.approx(0.875)
    assert METRICS.get("accuracy")(ctx()) == pytest.approx(0.8)


def test_per_group_and_worst_group_accuracy_by_hand():
    c = ctx({"race": np.array(["x", "x", "y", "y", "y"]), "sex": np.array([0, 1, 0, 1, 1])})
    assert METRICS.get("per_group_accuracy")(c) == pytest.approx({"x": 1.0, "y": 2 / 3})
    assert METRICS.get("worst_group_accuracy")(c) == pytest.approx(2 / 3)
    # Another attribute, with integer codes: 0 -> rows 0, 2 (both right); 1 -> rows 1, 3, 4 (two of three).
    assert METRICS.get("per_group_accuracy")(c, attribute="sex") == pytest.approx({"0": 1.0, "1": 2 / 3})
    out = evaluate([NamedSpec(name="per_group_accuracy"), NamedSpec(name="worst_group_accuracy")], c)
    assert out["worst_group_accuracy"] == {"value": pytest.approx(2 / 3), "higher_is_better": True}


def test_group_metrics_are_none_without_the_attribute():
    for name in ("per_group_accuracy", "worst_group_accuracy"):
        assert METRICS.get(name)(ctx()) is None
        assert METRICS.get(name)(ctx({"sex": np.zeros(5, int)}), attribute="race") is None
    bad = ctx({"race": np.array(["x", "y"])})
    with pytest.raises(BenchError, match="2 entries for 5 test examples"):
        METRICS.get("per_group_accuracy")(bad)
