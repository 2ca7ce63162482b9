"""Synthetic-quality metrics record the sample counts they were computed on, beside the value
(`metrics.NAME.samples`); FID refuses, with a recorded reason, below 2,049 images a side; the strict reader
takes results with and without counts and refuses a bad count; the suites that were resized validate.

Inception is replaced by a deterministic stand-in (`_extract`), so nothing here runs the network."""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.api import EvalContext, Split
from bench.cli import main
from bench.config import config_hash
from bench.errors import BenchError
from bench.evaluation import evaluate
from bench.metrics import image_quality as iq
from bench.results import Result, read_valid_result, write_result
from bench.text import text_array

REPO = Path(__file__).resolve().parents[1]
IMAGE_METRICS = ("kid", "coverage", "density", "one_nn_accuracy")


def spec(name: str, **params) -> SimpleNamespace:
    return SimpleNamespace(name=name, params=params)


@pytest.fixture
def stand_in_inception(monkeypatch):
    """Random 2048-d features per image set instead of Inception's; the calls, to check none is made."""
    calls: list[int] = []

    def extract(images, device):
        calls.append(len(images))
        rng = np.random.default_rng(int(np.asarray(images).sum()) + len(images))
        return rng.normal(size=(len(images), iq.FEATURE_DIM)).astype(np.float32)

    monkeypatch.setattr(iq, "_extract", extract)
    monkeypatch.setattr(iq, "_MEMO", OrderedDict())
    return calls


def image_ctx(real: int, synthetic: int) -> EvalContext:
    """`real` test images and `synthetic` synthetic ones, 8x8 RGB noise."""
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), np.zeros(n, dtype=np.int64))

    task = SimpleNamespace(test=split(real), device="cpu", data=SimpleNamespace(modality="image"))
    return EvalContext(task=task, classifier=None, y_true=task.test.y, probs=np.zeros((real, 2)),
                       synthetic=split(synthetic))


def test_image_metrics_record_the_images_they_used(stand_in_inception):
    """Asked for 50 a side, a cell with 12 synthetic images and 30 test images records 12 and 30."""
    out = evaluate([spec(name, samples=50, reference_samples=50) for name in IMAGE_METRICS], image_ctx(30, 12))
    for name in IMAGE_METRICS:
        assert out[name]["samples"] == {"synthetic": 12, "reference": 30}, name
        assert out[name]["value"] is not None and "reason" not in out[name], name
    few = evaluate([spec("kid", samples=5, reference_samples=20)], image_ctx(30, 12))["kid"]
    assert few["samples"] == {"synthetic": 5, "reference": 20}  # the subsets asked for, where both suffice


def test_fid_below_its_minimum_is_null_with_the_reason_and_runs_no_inception(stand_in_inception):
    out = evaluate([spec("fid", samples=2000, reference_samples=2000)], image_ctx(30, 12))["fid"]
    assert out["value"] is None
    assert out["samples"] == {"synthetic": 12, "reference": 30}
    assert "2049" in out["reason"] and "12 synthetic" in out["reason"]
    assert stand_in_inception == []  # refused before any feature was computed
    assert iq.MIN_FID_SAMPLES == 2049  # 2048-d features: N images give a covariance of rank N - 1


def test_fid_at_or_above_its_minimum_is_a_number_with_its_counts(stand_in_inception):
    """The minimum is a parameter (bench fid lowers it for two sets a user gives); at it, a number."""
    out = evaluate([spec("fid", samples=12, reference_samples=30, min_samples=12)], image_ctx(30, 12))["fid"]
    assert out["value"] > 0 and out["samples"] == {"synthetic": 12, "reference": 30}


def test_text_metrics_record_the_texts_they_scored():
    texts = [f"the film number {i} was {'good' if i % 2 else 'bad'} and long" for i in range(7)]
    split = Split(text_array(texts), np.zeros(len(texts), dtype=np.int64))
    task = SimpleNamespace(train=split, test=split, seed=0, device="cpu", data=SimpleNamespace(modality="text"))
    ctx = EvalContext(task=task, classifier=None, y_true=split.y, probs=np.full((7, 2), 0.5), synthetic=split)
    assert evaluate([spec("self_bleu", samples=200)], ctx)["self_bleu"]["samples"] == {"synthetic": 7}
    one = EvalContext(task=task, classifier=None, y_true=split.y, probs=ctx.probs, synthetic=split.subset(np.arange(1)))
    single = evaluate([spec("self_bleu", samples=200)], one)["self_bleu"]
    assert single["value"] is None and single["samples"] == {"synthetic": 1} and "two" in single["reason"]


def test_metrics_of_the_test_split_record_no_counts():
    ctx = EvalContext(task=None, classifier=None, y_true=np.array([0, 1]), probs=np.eye(2), synthetic=None)
    assert evaluate([spec("accuracy")], ctx)["accuracy"] == {"value": 1.0, "higher_is_better": True}


def with_kid(samples: object) -> dict:
    """A valid ok result with a kid value, recorded with `samples` (None: without counts, as before)."""
    config = {"seed": 0, "strategy": {"name": "random_synthetic"}}
    r = {"schema_version": 1, "suite": {"name": "s", "version": 1, "preset": "cpu", "primary_metric": "accuracy"},
         "cell": {"dataset": "d", "budget": 10, "strategy": "random_synthetic", "seed": 0},
         "config": config, "config_hash": config_hash(config), "status": "ok", "error": None,
         "metrics": {"accuracy": {"value": 0.5, "higher_is_better": True},
                     "kid": {"value": 0.01, "higher_is_better": False}},
         "strategy_log": {}, "packages": {}, "hardware": {}, "created_at": "2026-01-01T00:00:00+00:00",
         "compute": {"wall_seconds": 1.0, "cpu_seconds": 1.0, "cpu_hours": 1 / 3600, "peak_rss_bytes": 1,
                     "peak_rss_scope": "cell", "device": "cpu", "gpu_peak_memory_bytes": None, "gpu_hours": None},
         "code": {"git_commit": None, "git_dirty": None, "package_version": "0.1.0"}}
    if samples is not None:
        r["metrics"]["kid"]["samples"] = samples
    return r


def test_the_strict_reader_takes_results_with_and_without_counts(tmp_path):
    root = tmp_path / "results"
    for i, samples in enumerate([None, {"synthetic": 1000, "reference": 2000}]):
        path = root / f"seed{i}.json"
        write_result(path, with_kid(samples))
        assert Result.of(read_valid_result(path)).samples("kid") == samples
    null = with_kid({"synthetic": 12, "reference": 30})
    null["metrics"]["kid"].update(value=None, reason="too few")
    write_result(root / "seed9.json", null)


@pytest.mark.parametrize("samples", [{"synthetic": -1}, {"synthetic": 1.5}, {"synthetic": "12"}, [12, 30]])
def test_the_strict_reader_refuses_a_bad_count(tmp_path, samples):
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(with_kid(samples)))
    with pytest.raises(BenchError, match="metrics.kid.samples"):
        read_valid_result(path)


@pytest.mark.parametrize("suite", ["cifar10", "pneumoniamnist", "utkface", "imdb", "pubmedqa", "medqa"])
def test_the_resized_suites_validate_and_ask_for_no_rank_deficient_fid(suite, capsys):
    import yaml

    path = REPO / "benchmarks" / "suites" / f"{suite}.yaml"
    assert main(["validate", str(path)]) == 0
    assert "valid suite" in capsys.readouterr().out
    text = yaml.safe_load(path.read_text())
    lists = [text["metrics"]] + [p["metrics"] for p in (text.get("presets") or {}).values() if "metrics" in p]
    for metrics in lists:
        for m in metrics:
            if isinstance(m, dict) and m["name"] == "fid":  # only where the cells can supply 2,049 a side
                assert min(m["params"]["samples"], m["params"]["reference_samples"]) >= iq.MIN_FID_SAMPLES
            if isinstance(m, dict) and m["name"] in ("bertscore", "bleu", "self_bleu", "detection_auc"):
                assert m["params"]["samples"] >= 200
