"""`bench compare` (two result folders, cell by cell) and `bench fid` (two image sets on disk).

compare runs on copies of a few committed results, perturbed; fid on 8 + 8 random 32x32 images, so
that Inception (about 0.3 CPU-seconds per image at 299 px) sees about 18 images in the whole module:
each set's features are memoised by content, so the .npy, the PNG folder and the registered metrics
reuse them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.compare import DEFAULT_CUDA_TOLERANCE
from bench.config import config_hash
from bench.results import read_result, write_result

RESULTS = Path(__file__).resolve().parents[1] / "results"


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err
    assert expected in err, err


# ---------------------------------------------------------------- compare

def committed_cells(n: int = 3) -> list[Path]:
    """The first n committed results that hold a mapping metric (per_class_accuracy)."""
    found = []
    for path in sorted(RESULTS.rglob("seed*.json")):
        record = read_result(path)
        if record["status"] == "ok" and any(isinstance(m["value"], dict) for m in record["metrics"].values()):
            found.append(path)
        if len(found) == n:
            return found
    pytest.skip("no committed results with a per-class metric to copy")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """REF and NEW: the same three committed results, and NEW's paths to edit."""
    ref, new = tmp_path / "ref", tmp_path / "new"
    edits = []
    for path in committed_cells():
        rel = path.relative_to(RESULTS)
        for root in (ref, new):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / rel)
        edits.append(new / rel)
    return ref, new, edits


def edit(path: Path, change) -> dict:
    record = read_result(path)
    change(record)
    write_result(path, record)  # still a valid result
    return record


def compare(capsys, *argv: str) -> tuple[int, str]:
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    assert err == "", err
    return code, out


def counts(capsys, ref: Path, new: Path, *flags: str) -> tuple[int, dict]:
    code = main(["compare", str(ref), str(new), "--json", *flags])
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == code
    return code, report


def test_identical_folders_match(folders, capsys):
    ref, new, _ = folders
    code, out = compare(capsys, ref, new)
    assert code == 0
    assert "identical" in out and "every paired cell matches" in out
    code, report = counts(capsys, ref, new)
    assert report["counts"] == {"paired": 3, "identical": 3, "within_tolerance": 0, "different": 0,
                                "config_hash_differs": 0, "only_in_ref": 0, "only_in_new": 0}


def test_one_changed_metric_is_named_with_both_values(folders, capsys):
    ref, new, edits = folders
    before = read_result(edits[1])["metrics"]["accuracy"]["value"]
    edit(edits[1], lambda r: r["metrics"]["accuracy"].update(value=before + 0.01))
    code, out = compare(capsys, ref, new)
    assert code == 1
    cell = str(edits[1].relative_to(new).with_suffix(""))
    assert f"different: {cell} (cpu/cpu, exact)" in out
    assert f"accuracy: REF {before!r}  NEW {before + 0.01!r}" in out
    assert out.count("\n    ") == 1  # only that metric of only that cell
    code, report = counts(capsys, ref, new)
    assert report["counts"]["identical"] == 2 and report["counts"]["different"] == 1
    assert report["different"][0]["metrics"][0]["metric"] == "accuracy"


def test_nested_metrics_compare_per_key_and_none_equals_none(folders, capsys):
    ref, new, edits = folders
    name, per_class = next((k, m["value"]) for k, m in read_result(edits[0])["metrics"].items()
                           if isinstance(m["value"], dict))
    key = sorted(per_class)[0]
    edit(edits[0], lambda r: r["metrics"][name]["value"].update({key: None}))
    code, out = compare(capsys, ref, new)
    assert code == 1 and f"{name}.{key}: REF {per_class[key]!r}  NEW null" in out

    for root in (ref, new):  # None on both sides is equal
        edit(root / edits[0].relative_to(new), lambda r: r["metrics"][name]["value"].update({key: None}))
    assert compare(capsys, ref, new)[0] == 0


def test_a_metric_or_status_on_one_side_only_differs(folders, capsys):
    ref, new, edits = folders
    edit(edits[0], lambda r: r["metrics"].pop("accuracy"))
    edit(edits[1], lambda r: r.update(status="error", error={"type": "RuntimeError", "message": "boom"}))
    code, out = compare(capsys, ref, new)
    assert code == 1
    assert "accuracy: REF" in out and "NEW (missing)" in out
    assert "status: REF 'ok'  NEW 'error'" in out


def test_cells_on_one_side_are_listed_and_do_not_fail(folders, capsys):
    ref, new, edits = folders
    edits[2].unlink()
    extra = edits[0].with_name("seed99.json")
    edit(edits[0], lambda r: r["cell"].update(seed=99))
    edits[0].rename(extra)
    code, out = compare(capsys, ref, new)
    assert code == 0  # the cells on both sides match
    assert f"only in REF: {edits[2].relative_to(new).with_suffix('')}" in out
    assert f"only in NEW: {extra.relative_to(new).with_suffix('')}" in out
    _, report = counts(capsys, ref, new)
    assert report["counts"]["paired"] == 1 and report["counts"]["only_in_ref"] == 2
    assert report["counts"]["only_in_new"] == 1


def test_a_different_config_hash_is_not_compared(folders, capsys):
    ref, new, edits = folders
    def another_configuration(r: dict) -> None:  # another experiment, honestly hashed (a stale hash is refused)
        r["config"]["seed"] = r["config"].get("seed", 0) + 1000
        r["config_hash"] = config_hash(r["config"])
        r["metrics"]["accuracy"]["value"] = 0.0

    edit(edits[0], another_configuration)
    code, out = compare(capsys, ref, new)
    assert code == 1  # a cell on both sides that cannot be compared is not reproduced
    assert "config_hash differs (not comparable)" in out
    assert f"config_hash differs: {edits[0].relative_to(new).with_suffix('')}" in out
    assert "different: " not in out  # its metrics were not compared
    _, report = counts(capsys, ref, new)
    assert report["counts"]["paired"] == 2 and report["counts"]["config_hash_differs"] == 1


def test_cuda_results_compare_within_the_tolerance(folders, capsys):
    ref, new, edits = folders
    value = read_result(edits[0])["metrics"]["accuracy"]["value"]
    near = value * (1 + DEFAULT_CUDA_TOLERANCE / 10)

    edit(edits[0], lambda r: r["metrics"]["accuracy"].update(value=near))
    assert compare(capsys, ref, new)[0] == 1  # both on the CPU: exact
    assert counts(capsys, ref, new, "--tolerance", "1e-4")[0] == 0  # the flag applies to CPU pairs too

    edit(edits[0], lambda r: r["compute"].update(device="cuda:0"))
    code, report = counts(capsys, ref, new)
    assert code == 0 and report["counts"]["within_tolerance"] == 1
    assert report["within_tolerance"][0]["devices"] == "cpu/cuda"
    assert report["within_tolerance"][0]["max_rel_diff"] == pytest.approx(DEFAULT_CUDA_TOLERANCE / 10, rel=1e-3)
    assert counts(capsys, ref, new, "--tolerance", "0")[0] == 1

    edit(edits[0], lambda r: r["metrics"]["accuracy"].update(value=value * (1 + 10 * DEFAULT_CUDA_TOLERANCE)))
    code, out = compare(capsys, ref, new)
    assert code == 1 and "(cpu/cuda, rel 0.0001)" in out and "rel diff 0.000999" in out  # of the larger value


@pytest.mark.parametrize("case,expected", [
    ("missing", "REF {tmp}/nowhere does not exist"),
    ("file", "NEW {tmp}/a-file is not a folder"),
    ("empty", "no results under NEW {tmp}/empty"),
    ("damaged", "is not valid JSON"),
    ("duplicate", "holds two results of cell"),
    ("tolerance", "--tolerance takes a relative tolerance >= 0"),
])
def test_compare_bad_input_is_one_line_and_exit_2(folders, tmp_path, capsys, case, expected):
    ref, new, edits = folders
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "empty").mkdir()
    argv = {"missing": [tmp_path / "nowhere", new], "file": [ref, tmp_path / "a-file"],
            "empty": [ref, tmp_path / "empty"], "tolerance": [ref, new, "--tolerance", "-1"]}.get(case, [ref, new])
    if case == "damaged":
        edits[0].write_text("{")
    if case == "duplicate":
        shutil.copytree(new, new / "copy")
    one_line_error(capsys, ["compare", *map(str, argv)], expected.format(tmp=tmp_path))


# ---------------------------------------------------------------- fid

N = 8  # images per set: 16 through Inception, a few seconds


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """Two sets of 8 random 32x32 RGB images (B brighter than A) as .npy, A also as a folder of PNGs,
    A's first channel as a greyscale .npy, and bad inputs."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 200, (N, 32, 32, 3), dtype=np.uint8)
    b = rng.integers(55, 256, (N, 32, 32, 3), dtype=np.uint8)
    paths = {name: root / f"{name}.npy" for name in ("a", "b", "grey", "float", "two_channels", "flat", "one")}
    np.save(paths["a"], a)
    np.save(paths["b"], b)
    np.save(paths["grey"], a[..., 0])
    np.save(paths["float"], a.astype(np.float32))
    np.save(paths["two_channels"], a[..., :2])
    np.save(paths["flat"], a.reshape(-1))
    np.save(paths["one"], a[:1])
    paths["png"] = root / "png"
    (paths["png"] / "sub").mkdir(parents=True)
    for i, im in enumerate(a):  # one in a sub-folder: read too, in sorted path order
        Image.fromarray(im).save(paths["png"] / ("sub" if i == N - 1 else "") / f"{i:02d}.png")
    (paths["png"] / "notes.txt").write_text("not an image: skipped")
    paths["mixed"] = root / "mixed"
    paths["mixed"].mkdir()
    Image.fromarray(a[0]).save(paths["mixed"] / "0.png")
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(paths["mixed"] / "1.jpg")
    for name in ("empty", "text_only", "broken"):
        (root / name).mkdir()
        paths[name] = root / name
    (paths["text_only"] / "readme.txt").write_text("x")
    shutil.copy(paths["png"] / "00.png", paths["broken"] / "00.png")
    (paths["broken"] / "01.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "bad.npy").write_bytes(b"not numpy")
    paths["bad_npy"] = root / "bad.npy"
    paths["txt"] = root / "notes.txt"
    paths["txt"].write_text("x")
    return paths


def fid_scores(capsys, *argv: str) -> dict[str, float]:
    assert main(["fid", *map(str, argv), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if not line.endswith(")")}


def test_fid_reads_npy_and_png_folders_alike(image_files, capsys):
    from bench.image_files import read_image_set

    from_png = read_image_set(image_files["png"])
    assert isinstance(from_png, np.ndarray) and np.array_equal(from_png, np.load(image_files["a"]))
    assert np.array_equal(read_image_set(image_files["grey"]), np.repeat(np.load(image_files["grey"])[..., None], 3, -1))

    npy = fid_scores(capsys, image_files["a"], image_files["b"], "--kid", "--prdc")
    assert set(npy) == {"fid", "kid", "coverage", "density", "one_nn_accuracy"}
    assert npy["fid"] > 1 and npy["one_nn_accuracy"] > 0.5
    png = fid_scores(capsys, image_files["png"], image_files["b"], "--kid", "--prdc")
    assert png == npy
    same = fid_scores(capsys, image_files["a"], image_files["png"])
    assert abs(same["fid"]) < 1e-3 * npy["fid"]  # FID(A, A) ~ 0, up to sqrtm's rounding


def from_features(real, fake) -> dict[str, float]:
    """The scores of two image sets as `bench fid` computed them before it called the registered metrics:
    Inception features of every image, then the estimators at their default parameters."""
    from bench.metrics.image_quality import (
        features,
        fid_from_features,
        kid_from_features,
        one_nn_from_features,
        prdc_from_features,
    )

    a, b = features(real).astype(np.float64), features(fake).astype(np.float64)
    prdc = prdc_from_features(a, b)
    return {"fid": fid_from_features(a, b), "kid": kid_from_features(a, b), "coverage": prdc["coverage"],
            "density": prdc["density"], "one_nn_accuracy": one_nn_from_features(a, b)}


def test_fid_command_calls_the_registered_metrics_and_its_numbers_stay(image_files, capsys):
    """`bench fid` prints the registered metrics of a context holding the two sets, which are the numbers
    of the estimators on every image's features; its printed values are those to 8 digits."""
    from test_image_quality import make_ctx, score

    from bench.cli.fid import PRDC, image_set_scores

    a, b = np.load(image_files["a"]), np.load(image_files["b"])
    scores = image_set_scores(a, b, ("fid", "kid", *PRDC), device="cpu")
    assert scores == from_features(a, b)
    ctx = make_ctx(a, b)
    for name, value in scores.items():
        assert score(name, ctx, samples=N, reference_samples=N) == value, name  # FID at any N >= 2, as bench fid
    printed = fid_scores(capsys, image_files["a"], image_files["b"], "--kid", "--prdc")
    assert printed == {name: float(f"{value:.8g}") for name, value in scores.items()}


def test_fid_of_images_of_several_sizes_and_a_subset(image_files, capsys):
    from bench.cli.fid import image_set_scores
    from bench.image_files import read_image_set
    from bench.metrics.image_quality import _pick

    mixed = read_image_set(image_files["mixed"])
    assert [im.shape for im in mixed] == [(32, 32, 3), (24, 40, 3)]
    printed = fid_scores(capsys, image_files["mixed"], image_files["b"])
    assert np.isfinite(printed["fid"])
    b = np.load(image_files["b"])
    assert image_set_scores(mixed, b, ("fid",), device="cpu")["fid"] == from_features(mixed, b)["fid"]
    subset = read_image_set(image_files["a"], samples=4)
    assert np.array_equal(subset, _pick(np.load(image_files["a"]), 4))
    folder_subset = read_image_set(image_files["png"], samples=4)  # the same images, picked before decoding
    assert np.array_equal(folder_subset, subset)


@pytest.mark.parametrize("argv,expected", [
    (["{nowhere}", "{b}"], "does not exist"),
    (["{empty}", "{b}"], "no image files"),
    (["{text_only}", "{b}"], "no image files"),
    (["{broken}", "{b}"], "cannot read image"),
    (["{a}", "{float}"], "expected uint8 images of shape"),
    (["{a}", "{two_channels}"], "expected uint8 images of shape"),
    (["{a}", "{flat}"], "expected uint8 images of shape"),
    (["{one}", "{b}"], "1 image(s), at least 2 needed"),
    (["{a}", "{bad_npy}"], "not a readable .npy array"),
    (["{a}", "{txt}"], "expected a folder of image files or a .npy file"),
    (["{a}", "{b}", "--samples", "1"], "--samples takes a whole number of images >= 2"),
    (["{a}", "{b}", "--samples", "4", "--prdc"], "at least 6 needed"),
    (["{a}", "{b}", "--device", "tpu"], "invalid choice"),
])
def test_fid_bad_input_is_one_line_and_exit_2(image_files, capsys, argv, expected):
    paths = {k: str(v) for k, v in image_files.items()} | {"nowhere": str(image_files["a"].parent / "nowhere")}
    one_line_error(capsys, ["fid", *(a.format(**paths) for a in argv)], expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_fid_on_cuda_without_cuda_is_one_line(image_files, capsys):
    one_line_error(capsys, ["fid", str(image_files["a"]), str(image_files["b"]), "--device", "cuda"], "no CUDA device")
