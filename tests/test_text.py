"""The text modality: data sets, the multiple-choice item format, the cached MiniLM encoder, the text task
models, embedding-space strategies (SMOTE, DP-GAN) and bad text inputs through the command line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.benchmarks.models.minilm_encoder as encoder
from bench.api import DatasetInfo, DatasetSplits, Split
from bench.benchmarks.models.minilm_encoder import embed
from bench.cli import main
from bench.config import NamedSpec, SyntheticSpec, TrainRecipe
from bench.data import SHARED_DATA_DIR
from bench.errors import BenchError
from bench.registry import DATASETS, MODELS, STRATEGIES
from bench.task import Task
from bench.text import format_choice_item, parse_choice_item, text_array

POSITIVE = ["a wonderful, moving film with superb acting", "I loved every minute, a delight",
            "brilliant direction and a great story", "one of the best movies this year, truly excellent",
            "charming, funny and beautifully shot", "a masterpiece I will watch again and again",
            "great fun from start to finish", "the cast is fantastic and the script is sharp"]
NEGATIVE = ["a dull, boring mess with terrible acting", "I hated it, a waste of two hours",
            "awful direction and a stupid story", "one of the worst movies this year, truly dreadful",
            "tedious, unfunny and badly shot", "a disaster I never want to see again",
            "painful from start to finish", "the cast is wooden and the script is lazy"]


def sentiment_data() -> DatasetSplits:
    x = text_array(POSITIVE + NEGATIVE)
    y = np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    return DatasetSplits(name="toy_sentiment", modality="text", classes=["negative", "positive"],
                         train=Split(x, y), test=Split(x.copy(), y.copy()))


# -- the item format ----------------------------------------------------------------------------------


def test_choice_item_round_trip_and_refusals() -> None:
    item = format_choice_item("Which  drug?\nExplain.", ["aspirin", "(B) not an option line", "c", "d"])
    assert parse_choice_item(item, options=4) == ("Which drug? Explain.", ["aspirin", "(B) not an option line", "c", "d"])
    assert parse_choice_item(item, options=3) is None  # another number of options
    assert parse_choice_item("just a question") is None
    assert parse_choice_item("q\n(B) x\n(C) y") is None  # letters must start at A
    assert parse_choice_item("q\n(A) x\n(C) y") is None  # and follow in order
    assert parse_choice_item("(A) x\n(B) y") is None  # no question
    with pytest.raises(BenchError):
        format_choice_item("q", ["only one"])


# -- data sets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pubmedqa", "medqa"])
def test_text_datasets_match_their_declared_sizes(name: str) -> None:
    data = DATASETS.build(name, {}).load()
    caps = DATASETS.caps(name)
    assert data.modality == "text" and len(data.classes) == caps.classes
    assert tuple(np.bincount(data.train.y, minlength=caps.classes)) == caps.train_per_class
    assert tuple(np.bincount(data.test.y, minlength=caps.classes)) == caps.test_per_class
    assert data.train.x.dtype == object and all(isinstance(t, str) and t.strip() for t in data.train.x)


def test_medqa_items_parse_and_the_split_is_fixed_and_disjoint() -> None:
    a, b = DATASETS.build("medqa", {}).load(), DATASETS.build("medqa", {}).load()
    assert list(a.test.x) == list(b.test.x)  # the seeded split is the same on every load
    assert not set(a.train.x) & set(a.test.x)
    for item, label in zip(a.test.x[:50], a.test.y[:50]):
        question, options = parse_choice_item(item, options=4)
        assert question and len(options) == 4 and 0 <= label < 4


def test_pubmedqa_test_split_is_the_official_500() -> None:
    import json

    data = DATASETS.build("pubmedqa", {}).load()
    truth = json.loads((SHARED_DATA_DIR / "pubmedqa" / "test_ground_truth.json").read_text())
    assert len(data.test) == len(truth) == 500
    counts = np.bincount(data.test.y, minlength=3)
    expected = [sum(v == c for v in truth.values()) for c in ("yes", "no", "maybe")]
    assert counts.tolist() == expected


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_missing_or_altered_text_file_is_one_line(tmp_path: Path, damage: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pubmedqa"
    shutil.copytree(SHARED_DATA_DIR / "pubmedqa", folder)
    target = folder / "ori_pqal.json"
    target.chmod(0o644)
    if damage == "missing":
        target.unlink()
    else:
        blob = bytearray(target.read_bytes())
        blob[100] ^= 1
        target.write_bytes(bytes(blob))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: t\nversion: 1\nprimary_metric: accuracy\ndatasets: [pubmedqa]\nbudgets: [2]\n"
                     "val_per_class: 1\ntest_per_class: 2\nmodel: {name: minilm_head}\ntrain: {epochs: 1}\n"
                     "strategies: [real_only]\nmetrics: [accuracy]\nseeds: [0]\n")
    code = main(["run", "--suite", str(suite), "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert ("lacks ori_pqal.json" in err[0]) if damage == "missing" else ("sha256" in err[0])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))


@DATASETS.register("toy_empty_text", modality="text", classes=2, license="test")
class EmptyText:
    """A plug-in text data set with an empty review: the harness must refuse it in one line."""

    def __init__(self, data_dir: str | None = None) -> None:
        pass

    def load(self) -> DatasetSplits:
        from bench.text import check_texts

        texts = ["fine film", "   ", "bad film", "good film"]
        check_texts(texts, "toy_empty_text train")
        raise AssertionError("unreachable")


def test_empty_text_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: t\nversion: 1\nprimary_metric: accuracy\ndatasets: [toy_empty_text]\nbudgets: [1]\n"
                     "val_per_class: 1\nmodel: {name: minilm_head}\ntrain: {epochs: 1}\n"
                     "strategies: [real_only]\nmetrics: [accuracy]\nseeds: [0]\n")
    code = main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "item 1 is an empty text" in err[0]


# -- the encoder and its cache ------------------------------------------------------------------------


def test_embed_is_cached_per_text_and_passes_embeddings_through(monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    first = embed(text_array(POSITIVE[:3]))
    assert first.shape == (3, encoder.EMBEDDING_DIM) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)  # unit length, as trained

    def no_encoder(device: str):
        raise AssertionError("the encoder ran for texts that are cached")

    monkeypatch.setattr(encoder, "_encoder", no_encoder)
    # Reordered, repeated, and mixed with an embedding-space example: all from the cache.
    mixed = text_array([POSITIVE[2], first[0], POSITIVE[0], POSITIVE[2]])
    again = embed(mixed)
    assert np.array_equal(again[0], first[2]) and np.array_equal(again[1], first[0])
    assert np.array_equal(again[2], first[0]) and np.array_equal(again[3], first[2])
    with pytest.raises(BenchError, match="neither a string nor"):
        embed(text_array([np.zeros(5, dtype=np.float32)]))


def test_embeddings_separate_sentiment(one_thread) -> None:
    e = embed(text_array(POSITIVE + NEGATIVE))
    sims = e @ e.T
    same = (sims[:8, :8].sum() - 8) / 56 + (sims[8:, 8:].sum() - 8) / 56
    other = 2 * sims[:8, 8:].mean()
    assert same > other  # reviews of one sentiment are closer to each other than to the other sentiment


# -- task models --------------------------------------------------------------------------------------


def test_minilm_head_learns_sentiment_and_has_a_head_only_dropout(one_thread) -> None:
    from bench.method.uncertainty import head_only_dropout

    data = sentiment_data()
    task = Task.build(data, budget=6, val_per_class=2, seed=0, model=NamedSpec(name="minilm_head", params={}),
                      recipe=TrainRecipe(optimizer="adam", lr=3e-3, epochs=40, batch_size=8))
    clf = task.fit()
    assert head_only_dropout(clf.module)
    acc = (clf.predict_proba(data.test.x).argmax(1) == data.test.y).mean()
    assert acc >= 0.85


def test_minilm_choice_scores_options_independently_of_their_order(one_thread) -> None:
    """Permuting an item's options permutes its logits: each option is scored on its own pair."""
    spec = MODELS.build("minilm_choice", {})
    items = [format_choice_item("Which organ pumps blood?", ["the heart", "the liver", "the lung", "the skin"]),
             format_choice_item("Which organ filters blood?", ["the kidney", "the eye", "the bone", "the hair"])]
    train = Split(text_array(items), np.array([0, 0]))
    torch.manual_seed(0)
    net = spec.build(train, DatasetInfo.unnamed(4, "text")).eval()
    with torch.no_grad():
        logits = net(spec.to_tensor(train.x))
        perm = [2, 0, 3, 1]
        options = parse_choice_item(items[0])[1]
        shuffled = format_choice_item("Which organ pumps blood?", [options[p] for p in perm])
        moved = net(spec.to_tensor(text_array([shuffled])))
    assert logits.shape == (2, 4)
    assert torch.allclose(moved[0], logits[0, perm], atol=1e-5)
    with pytest.raises(BenchError, match="not a multiple-choice item"):
        spec.to_tensor(text_array(["no options here"]))


# -- embedding-space strategies -----------------------------------------------------------------------


@pytest.mark.parametrize("strategy, params", [("smote", {}), ("dp_gan", {"epochs": 2, "batch_size": 8})])
def test_embedding_space_strategies_add_embeddings_that_train(strategy: str, params: dict, one_thread) -> None:
    data = sentiment_data()
    task = Task.build(data, budget=6, val_per_class=2, seed=0, model=NamedSpec(name="minilm_head", params={}),
                      recipe=TrainRecipe(optimizer="adam", lr=3e-3, epochs=5, batch_size=8),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="pca_gmm", params={}), budget_per_class=4,
                                              mix_ratio=0.5))
    result = STRATEGIES.build(strategy, params).run(task)
    syn = result.synthetic
    assert len(syn) == 8 and np.bincount(syn.y).tolist() == [4, 4]
    assert syn.x.dtype == object
    assert all(isinstance(v, np.ndarray) and v.shape == (encoder.EMBEDDING_DIM,) for v in syn.x)
    if strategy == "smote":  # interpolations of same-class neighbours: close to that class's real embeddings
        real = embed(task.train.x)
        centre = np.stack([real[task.train.y == c].mean(0) for c in (0, 1)])
        pts = np.stack(list(syn.x))
        nearest = np.argmax(pts @ centre.T, axis=1)
        assert (nearest == syn.y).mean() >= 0.75
    else:
        assert result.log["privacy"]["epsilon"] > 0


def test_embedding_space_strategies_on_multiple_choice_run_with_embedding_metrics(tmp_path: Path, one_thread) -> None:
    """SMOTE's and DP-GAN's MedQA items are [question; options] embeddings: the embedding-space metrics
    (detection AUC, coverage) read them through a model instance that built no network, where the number
    of options comes from an embedding's width (it once failed: 'neither an item nor a 384-d embedding')."""
    suite = tmp_path / "s.yaml"
    suite.write_text("name: t\nversion: 1\nprimary_metric: exact_match\ndatasets: [medqa]\nbudgets: [3]\n"
                     "val_per_class: 1\ntest_per_class: 2\nmodel: {name: minilm_choice}\ntrain: {epochs: 2}\n"
                     "synthetic: {generator: {name: pca_gmm}, budget_per_class: 2, mix_ratio: 0.5}\n"
                     "strategies: [smote, {name: dp_gan, params: {epochs: 2, batch_size: 8}}]\n"
                     "metrics: [exact_match, {name: detection_auc, params: {samples: 8, model: logistic}}, coverage]\nseeds: [0]\n")
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").rglob("seed0.json"))]
    assert [r["cell"]["strategy"] for r in records] == ["dp_gan", "smote"]
    for r in records:
        assert r["status"] == "ok", r["error"]
        assert 0.0 <= r["metrics"]["detection_auc"]["value"] <= 1.0
    width = (1 + 4) * encoder.EMBEDDING_DIM
    fresh = MODELS.build("minilm_choice", {})  # no network built: K from the embedding's width
    vectors = np.empty(2, dtype=object)
    vectors[:] = [np.full(width, 0.5, dtype=np.float32), np.zeros(width, dtype=np.float32)]
    assert fresh.to_tensor(vectors).shape == (2, width)
    vectors[:] = [np.zeros(encoder.EMBEDDING_DIM + 1, dtype=np.float32)] * 2
    with pytest.raises(BenchError, match="neither an item nor"):
        fresh.to_tensor(vectors)


def test_dp_gan_on_text_is_accepted_by_validation_and_smote_needs_a_frozen_encoder(tmp_path: Path) -> None:
    from bench.cells import expand_cells
    from bench.config import load_suite

    suite = tmp_path / "s.yaml"
    body = ("name: t\nversion: 1\nprimary_metric: accuracy\ndatasets: [pubmedqa]\nbudgets: [2]\nval_per_class: 1\n"
            "test_per_class: 2\nmodel: {name: minilm_head%s}\ntrain: {epochs: 1}\nsynthetic: {generator: {name: pca_gmm},"
            " budget_per_class: 2, mix_ratio: 0.5}\nstrategies: [real_only, smote, dp_gan]\nmetrics: [accuracy]\nseeds: [0]\n")
    suite.write_text(body % "")
    assert len(expand_cells(load_suite(str(suite)))) == 3  # dp_gan's vector variant serves text
    data = sentiment_data()
    task = Task.build(data, budget=6, val_per_class=2, seed=0,
                      model=NamedSpec(name="minilm_head", params={"lora": True}), recipe=TrainRecipe(epochs=1),
                      synthetic=SyntheticSpec(generator=NamedSpec(name="pca_gmm", params={}), budget_per_class=2,
                                              mix_ratio=0.5))
    with pytest.raises(BenchError, match="frozen encoder"):
        STRATEGIES.build("smote", {}).run(task)


def test_lora_encoder_fine_tunes_adapters_only(one_thread) -> None:
    """lora: true trains LoRA adapters inside the encoder (peft) and the head; the encoder's own weights stay."""
    data = sentiment_data()
    task = Task.build(data, budget=6, val_per_class=2, seed=0,
                      model=NamedSpec(name="minilm_head", params={"lora": True, "max_tokens": 32}),
                      recipe=TrainRecipe(optimizer="adam", lr=1e-3, epochs=2, batch_size=6))
    spec = MODELS.build("minilm_head", {"lora": True, "max_tokens": 32})
    before = spec.build(task.train, task.info)
    tokens = spec.to_tensor(task.train.x)
    assert tokens.shape == (12, 2, 32) and not tokens.is_floating_point()
    trainable = {n for n, p in before.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    assert not any("encoder" in n and "lora_" not in n for n in trainable)  # base weights frozen
    clf = task.fit()
    assert clf.predict_proba(task.test.x).shape == (16, 2)
    lora_moved = [n for n, p in clf.module.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert lora_moved  # LoRA's B starts at zero: non-zero after training means the adapters learned


@pytest.mark.parametrize("prompt", ["Write a short movie review.", "Rewrite {text} please"])
def test_prompt_template_without_label_is_one_line(tmp_path: Path, prompt: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: t\nversion: 1\nprimary_metric: accuracy\ndatasets: [pubmedqa]\nbudgets: [2]\n"
                     "val_per_class: 1\ntest_per_class: 2\nmodel: {name: minilm_head}\ntrain: {epochs: 1}\n"
                     f"synthetic: {{generator: {{name: smollm2, params: {{class_prompt: '{prompt}'}}}}, "
                     "budget_per_class: 2, mix_ratio: 0.5}\nstrategies: [real_only, random_synthetic]\n"
                     "metrics: [accuracy]\nseeds: [0]\n")
    for command in (["validate", str(suite)], ["run", "--suite", str(suite), "--out", str(tmp_path / "out")]):
        code = main(command)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "{label}" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_an_interrupted_encode_keeps_the_batches_it_finished(monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    real = encoder._encoder("cpu")
    calls = {"n": 0}

    class FailsOnSecondBatch:
        max_seq_length = 128

        def encode(self, texts, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt  # the user stops a long encode
            return real.encode(texts, **kwargs)

    monkeypatch.setattr(encoder, "_encoder", lambda device: FailsOnSecondBatch())
    texts = text_array(["an interrupted encode, first", "an interrupted encode, second",
                        "an interrupted encode, third", "an interrupted encode, fourth"])
    with pytest.raises(KeyboardInterrupt):
        embed(texts, batch_size=2)
    monkeypatch.setattr(encoder, "_encoder", lambda device: pytest.fail("the first batch was not kept"))
    assert embed(texts[:2]).shape == (2, encoder.EMBEDDING_DIM)


def test_detection_auc_is_none_when_the_detector_learns_nothing() -> None:
    """24 rows a side (the medqa suite's synthetic items): gradient boosting's 20 rows per leaf cannot
    split the 38 training rows of a fold, so every score is alike; that is no measurement, not 0.5."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from bench.metrics.table_quality import _two_sample_auc

    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(size=(24, 64)), rng.normal(1.0, 1.0, size=(24, 64))
    assert _two_sample_auc(real, synthetic, HistGradientBoostingClassifier(random_state=0), 5, 0) is None
    assert _two_sample_auc(real, synthetic, LogisticRegression(max_iter=1000), 5, 0) > 0.9  # shifted: found
    big_real, big_synthetic = rng.normal(size=(100, 8)), rng.normal(1.0, 1.0, size=(100, 8))
    assert _two_sample_auc(big_real, big_synthetic, HistGradientBoostingClassifier(random_state=0), 5, 0) > 0.8
