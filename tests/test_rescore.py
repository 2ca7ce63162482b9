"""Artifacts beside every result and `bench rescore`: metrics added to a suite are computed from the stored
test probabilities (and the kept synthetic split) without retraining, bit for bit what a fresh run gives;
damaged artifacts and metrics that need the trained model are refused; the report shows thumbnails."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_suite import GOOD

from bench import artifacts, report
from bench.api import EvalContext, Split
from bench.cells import expand_cells
from bench.cli import main
from bench.config import load_suite
from bench.registry import METRICS
from bench.results import read_valid_result
from bench.text import text_array

# GOOD (CIFAR-10, 2 real images per class, one epoch) with a strategy that adds synthetic images (a cheap
# PCA + Gaussian-mixture generator, 2 per class) beside real_only.
BASE = GOOD.replace("strategies: [real_only]", "strategies: [real_only, random_synthetic]").replace(
    "train: {epochs: 1}\n",
    "train: {epochs: 1}\nsynthetic: {generator: {name: pca_gmm, params: {components: 4, mixtures: 1}}, "
    "budget_per_class: 2}\n")
CELL = "t/v1/cpu/cifar10/n2/{}/seed0"
STRATEGIES = ("real_only", "random_synthetic")
SYNTHETIC_METRIC = "mean_synthetic_pixel"  # registered by the fixture below: a cheap "synthetic" metric


def with_metrics(metrics: str) -> str:
    return BASE.replace("metrics: [accuracy]", f"metrics: [{metrics}]")


def write_suite(folder: Path, text: str, name: str = "suite.yaml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def synthetic_metric():
    """A metric that reads the synthetic split (its mean pixel value), so that the kept split is tested
    without Inception's minutes on a CPU; removed again after the module."""

    def mean_synthetic_pixel(ctx: EvalContext) -> float | None:
        if ctx.synthetic is None or len(ctx.synthetic) == 0:
            return None
        return float(np.asarray(ctx.synthetic.x, dtype=np.float64).mean())

    METRICS.register(SYNTHETIC_METRIC, higher_is_better=True, modalities=("image",), needs="synthetic")(
        mean_synthetic_pixel)
    yield
    METRICS._entries.pop(SYNTHETIC_METRIC, None)
    METRICS._meta.pop(SYNTHETIC_METRIC, None)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, synthetic_metric) -> Path:
    """The base suite (accuracy only) run once with --keep-synthetic; tests work on copies."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("rescore")
    out = folder / "out"
    assert main(["run", "--suite", write_suite(folder, BASE), "--out", str(out), "--quiet", "--keep-synthetic"]) == 0
    return out


@pytest.fixture
def results(base_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(base_run, out)
    return out


def result(out: Path, strategy: str) -> dict:
    return read_valid_result(out / f"{CELL.format(strategy)}.json")


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_rescore_gives_what_a_fresh_run_gives(results: Path, tmp_path: Path, capsys) -> None:
    metrics = f"accuracy, nll, ece, per_class_accuracy, {SYNTHETIC_METRIC}"
    suite = write_suite(tmp_path, with_metrics(metrics))
    fresh = tmp_path / "fresh"
    shutil.copytree(results, fresh)
    capsys.readouterr()
    assert main(["rescore", "--results", str(results), "--suite", suite, "--quiet"]) == 0
    assert "2 cells rescored (8 metric values added), 0 up to date" in capsys.readouterr().out
    assert main(["run", "--suite", suite, "--out", str(fresh), "--quiet", "--force", "--keep-synthetic"]) == 0
    hashes = {c.strategy.key: c.hash for c in expand_cells(load_suite(suite))}
    for strategy in STRATEGIES:
        rescored, rerun = result(results, strategy), result(fresh, strategy)
        assert list(rescored["metrics"]) == ["accuracy", "nll", "ece", "per_class_accuracy", SYNTHETIC_METRIC]
        assert rescored["metrics"] == rerun["metrics"]  # bit for bit: JSON floats round-trip exactly
        assert rescored["config"] == rerun["config"]
        assert rescored["config_hash"] == rerun["config_hash"] == hashes[strategy]
        assert rescored["rescored"]["metrics"] == ["nll", "ece", "per_class_accuracy", SYNTHETIC_METRIC]
        assert rescored["artifacts"] == rerun["artifacts"]  # the same probabilities and sample, byte for byte
    assert result(results, "random_synthetic")["metrics"][SYNTHETIC_METRIC]["value"] is not None
    assert result(results, "real_only")["metrics"][SYNTHETIC_METRIC]["value"] is None
    capsys.readouterr()
    assert main(["run", "--suite", suite, "--out", str(results), "--quiet"]) == 0
    assert "0 done, 2 up to date" in capsys.readouterr().out
    # Dropping a metric again needs no computation; the result then says which metrics came later.
    assert main(["rescore", "--results", str(results), "--suite", write_suite(tmp_path, with_metrics("accuracy, nll"),
                 "fewer.yaml"), "--quiet"]) == 0
    assert "2 cells rescored (0 metric values added)" in capsys.readouterr().out
    r = result(results, "real_only")
    assert list(r["metrics"]) == ["accuracy", "nll"] and r["rescored"]["metrics"] == ["nll"]


def test_artifacts_are_small_and_hold_thumbnails(base_run: Path, tmp_path: Path) -> None:
    for strategy in STRATEGIES:
        r = result(base_run, strategy)
        sidecar = base_run / f"{CELL.format(strategy)}.npz"
        assert r["artifacts"]["file"] == "seed0.npz" and r["artifacts"]["bytes"] == sidecar.stat().st_size
        assert sidecar.stat().st_size < 100_000  # 16 thumbnails of 32x32x3 at most, and 20 x 10 probabilities
        arrays = artifacts.read_sidecar(base_run / f"{CELL.format(strategy)}.json", r)
        assert arrays["probs"].dtype == np.float32 and arrays["probs"].shape == (20, 10)
        np.testing.assert_allclose(arrays["probs"].sum(axis=1), 1, rtol=1e-5)
    thumbs = artifacts.read_sidecar(base_run / f"{CELL.format('random_synthetic')}.json",
                                    result(base_run, "random_synthetic"))
    assert thumbs["thumbnails"].dtype == np.uint8 and thumbs["thumbnails"].shape == (16, 32, 32, 3)
    assert len(thumbs["sample_classes"]) == 16 and set(thumbs["sample_labels"].tolist()) <= set(range(10))
    assert "thumbnails" not in artifacts.read_sidecar(base_run / f"{CELL.format('real_only')}.json",
                                                      result(base_run, "real_only"))
    kept = result(base_run, "random_synthetic")["artifacts"]["synthetic"]
    assert kept["file"] == f".synthetic/{CELL.format('random_synthetic')}.npz"
    split = artifacts.read_synthetic(base_run / f"{CELL.format('random_synthetic')}.json",
                                     result(base_run, "random_synthetic"))
    assert split.x.shape == (20, 32, 32, 3) and split.x.dtype == np.uint8
    assert result(base_run, "real_only")["artifacts"]["synthetic"] is None  # kept: it added nothing
    # The report draws the thumbnails of the image strategy with synthetic data, identically twice.
    a, b = tmp_path / "a", tmp_path / "b"
    report.build(base_run, a)
    report.build(base_run, b)
    figure = a / report.FIGURES / "t-v1-cpu-cifar10-n2-synthetic.svg"
    assert figure.is_file() and b"<image" in figure.read_bytes()
    assert figure.read_bytes() == (b / report.FIGURES / figure.name).read_bytes()
    assert figure.name in (a / report.INDEX).read_text()


def test_full_size_probabilities_stay_small_and_exact() -> None:
    logits = torch.randn(10_000, 10, generator=torch.Generator().manual_seed(0)) * 3
    probs = torch.softmax(logits, dim=1).double().numpy()  # as bench.training.Classifier returns them
    stored = artifacts.stored_probs(probs)
    assert stored.dtype == np.float32 and np.array_equal(stored.astype(np.float64), probs)
    assert len(artifacts.npz_bytes({"probs": stored})) < 400_000  # bytes
    averaged = (probs + np.roll(probs, 1, axis=0)) / 2  # an ensemble's mean is not float32-exact: kept in float64
    assert artifacts.stored_probs(averaged).dtype == np.float64


def test_damaged_artifacts_are_refused(results: Path, tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, with_metrics("accuracy, nll"))
    sidecar = results / f"{CELL.format('random_synthetic')}.npz"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    before = snapshot(results)
    capsys.readouterr()
    assert main(["rescore", "--results", str(results), "--suite", suite, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "damaged" in err and str(sidecar) in err
    assert snapshot(results) == before  # refused before any result changed


def test_a_metric_that_needs_the_model_is_refused(results: Path, tmp_path: Path, capsys) -> None:
    before = snapshot(results)
    suite = write_suite(tmp_path, with_metrics("accuracy, nll, {name: pgd_accuracy, params: {samples: 4}}"))
    capsys.readouterr()
    assert main(["rescore", "--results", str(results), "--suite", suite, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "cannot rescore pgd_accuracy: it needs the trained model" in err
    assert snapshot(results) == before


def test_cells_without_what_a_metric_reads_are_skipped_with_reasons(results: Path, tmp_path: Path, capsys) -> None:
    # Without the kept split, the synthesising strategy cannot get a synthetic metric; real_only can (None).
    path = results / f"{CELL.format('random_synthetic')}.json"
    record = json.loads(path.read_text())
    del record["artifacts"]["synthetic"]
    path.write_text(json.dumps(record))
    suite = write_suite(tmp_path, with_metrics(f"accuracy, {SYNTHETIC_METRIC}"))
    capsys.readouterr()
    assert main(["rescore", "--results", str(results), "--suite", suite, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 cell rescored (1 metric value added)" in out
    assert f"1 synthetic split not kept ({SYNTHETIC_METRIC})" in out
    assert SYNTHETIC_METRIC not in result(results, "random_synthetic")["metrics"]
    # A result written before artifacts existed is skipped, saying so.
    path = results / f"{CELL.format('real_only')}.json"
    record = json.loads(path.read_text())
    del record["artifacts"]
    path.write_text(json.dumps(record))
    assert main(["rescore", "--results", str(results), "--suite", write_suite(tmp_path, with_metrics("accuracy, ece"),
                 "ece.yaml"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 cell rescored" in out and "1 no artifacts" in out
    # Another training recipe is another experiment: nothing to rescore, the run must recompute it.
    other = with_metrics("accuracy, ece, nll").replace("train: {epochs: 1}", "train: {epochs: 2}")
    assert main(["rescore", "--results", str(results), "--suite", write_suite(tmp_path, other, "epochs.yaml"),
                 "--quiet"]) == 0
    assert "0 cells rescored" in (out := capsys.readouterr().out) and "2 trained with another train" in out


@pytest.mark.parametrize("case", ["missing folder", "unknown suite", "no results"])
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    argv = {"missing folder": ["--results", str(tmp_path / "nope"), "--suite", write_suite(tmp_path, GOOD)],
            "unknown suite": ["--results", str(folder), "--suite", "no-such-suite"],
            "no results": ["--results", str(folder), "--suite", write_suite(tmp_path, GOOD)]}[case]
    assert main(["rescore", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1
    assert {"missing folder": "does not exist", "unknown suite": "unknown suite",
            "no results": "no results of suite 't'"}[case] in err


def test_splits_round_trip_without_pickle() -> None:
    """A text split mixing strings and embedding-space examples, with string groups, comes back equal."""
    x = text_array(["a review", np.arange(4, dtype=np.float32), "ünïcode ✓"])
    split = Split(x, np.array([0, 1, 0]), {"lang": np.array(["en", "fr", "de"], dtype=object)})
    arrays = artifacts.encode_split(split)
    assert all(a.dtype != object for a in arrays.values())
    back = artifacts.decode_split(dict(np.load(_saved(arrays), allow_pickle=False)))
    assert back.x.dtype == object and back.x[0] == "a review" and type(back.x[2]) is str and back.x[2] == "ünïcode ✓"
    assert back.x[1].dtype == np.float32 and np.array_equal(back.x[1], x[1])
    assert back.groups["lang"].tolist() == ["en", "fr", "de"] and np.array_equal(back.y, split.y)


def test_a_sample_spreads_over_the_classes_and_thumbnails_shrink() -> None:
    y = np.repeat(np.arange(4), 10)
    idx = artifacts.spread_sample(y, 8, seed=3)
    assert sorted(y[idx].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.array_equal(idx, artifacts.spread_sample(y, 8, seed=3))
    big = np.full((2, 64, 64, 3), 200, dtype=np.uint8)
    assert artifacts.thumbnail(big).shape == (2, 32, 32, 3) and artifacts.thumbnail(big).max() == 200
    assert artifacts.thumbnail(np.zeros((1, 28, 28), dtype=np.uint8)).shape == (1, 28, 28, 1)


def _saved(arrays: dict[str, np.ndarray]) -> io.BytesIO:
    return io.BytesIO(artifacts.npz_bytes(arrays))
