"""Text data sets: IMDB sentiment, PubMedQA (PQA-L) and MedQA-USMLE (4 options). Their splits hold
strings in 1-d object arrays (bench.text). Each file is checked against its sha256 on every load (the
files are small, and reading them is faster than any cache would be); a missing or altered file is a
one-line error.

- `imdb` (Maas et al. 2011, aclImdb v1): the official train (25,000) and test (25,000) splits, 12,500
  negative / 12,500 positive each; class 1 = positive. The HTML line breaks of the original reviews
  ("<br />") become spaces. The 96 duplicate texts in train, 199 in test and 123 test texts also in
  train are kept, as in the published splits (DATA.md); a suite's `test_per_class` draws a fixed
  stratified subset (bench.task).
- `pubmedqa` (Jin et al. 2019), PQA-L: 1,000 expert-labelled questions; the input is the question
  followed by its abstract's context paragraphs (not the long answer, which states the conclusion),
  the label its final decision yes / no / maybe. The official 500 test ids (`test_ground_truth.json`)
  are the test split, the other 500 the training split (276 yes / 169 no / 55 maybe in each).
- `medqa` (Jin et al. 2021), USMLE, 4 options: only the official test file (1,273 questions) is here,
  so it is split in two by a fixed seeded, stratified draw (`SPLIT_SEED`): 125 questions of each answer
  letter form the test split (500), the remaining 773 (A 228, B 184, C 221, D 140) the training split.
  An input is one multiple-choice item (bench.text.format_choice_item: the question, then the options
  "(A) ..." to "(D) ..."); the label is the correct option's index (class "A" = 0). Chance accuracy
  (exact match of a uniformly random letter) is 0.25.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.api import DatasetSplits, Split
from bench.data import DataFile, locate, verify_file
from bench.errors import BenchError
from bench.registry import DATASETS
from bench.text import CHOICE_LETTERS, check_texts, format_choice_item, text_array

IMDB_FILES = (DataFile("imdb_train.parquet", "f6550ee5f586110bca9c657334ef920075ef5391e4a1d5a506b3c49e9855a9f5"),
              DataFile("imdb_test.parquet", "549ce9f876b7d052447ec6f46387dd89ece1d4f8c601ea6f30ffeb5ce1301b6d"))
PUBMEDQA_FILES = (DataFile("ori_pqal.json", "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d"),
                  DataFile("test_ground_truth.json", "939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51"))
MEDQA_FILES = (DataFile("test.jsonl", "2e51d17d47099a72c4eea6b6a3307de71360333e0c99beb1d53d7a42834cacc4"),)

PUBMEDQA_CLASSES = ["yes", "no", "maybe"]
MEDQA_OPTIONS = 4
SPLIT_SEED = 20210101  # the seed of medqa's train/test split: fixed, so every run sees the same split
MEDQA_TEST_PER_LETTER = 125


def _verified(dataset: str, files: tuple[DataFile, ...], data_dir: str | None) -> Path:
    folder = locate(dataset, files, data_dir)
    for f in files:
        verify_file(folder / f.name, f.sha256)
    return folder


def _split(texts: list[str], labels: list[int], what: str) -> Split:
    check_texts(texts, what)
    return Split(text_array(texts), np.asarray(labels, dtype=np.int64))


@DATASETS.register("imdb", modality="text", classes=2, license="cite Maas et al. 2011",
                   train_per_class=(12500, 12500), test_per_class=(12500, 12500))
class IMDB:
    """IMDB movie reviews, negative (0) or positive (1); `data_dir` holds an `imdb/` sub-folder."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        import pyarrow.parquet as pq

        folder = _verified("imdb", IMDB_FILES, self.data_dir)
        splits = {}
        for name, f in zip(("train", "test"), IMDB_FILES):
            try:
                table = pq.read_table(folder / f.name, columns=["text", "label"])
            except Exception as exc:  # pyarrow raises its own types for a damaged file or a missing column
                raise BenchError(f"cannot read {folder / f.name}: {type(exc).__name__}: {exc}") from None
            texts = [" ".join(t.replace("<br />", " ").split()) for t in table.column("text").to_pylist()]
            splits[name] = _split(texts, table.column("label").to_pylist(), f"imdb {name}")
        return DatasetSplits(name="imdb", modality="text", classes=["negative", "positive"], **splits)


@DATASETS.register("pubmedqa", modality="text", classes=3, license="MIT",
                   train_per_class=(276, 169, 55), test_per_class=(276, 169, 55))
class PubMedQA:
    """PubMedQA PQA-L: question + context -> yes / no / maybe; the official 500 test ids are the test split."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        folder = _verified("pubmedqa", PUBMEDQA_FILES, self.data_dir)
        try:
            records = json.loads((folder / PUBMEDQA_FILES[0].name).read_text())
            test_ids = set(json.loads((folder / PUBMEDQA_FILES[1].name).read_text()))
            parts: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
            for pmid in sorted(records, key=int):  # a fixed order, independent of the file's
                r = records[pmid]
                text = " ".join(f"{r['QUESTION']} {' '.join(r['CONTEXTS'])}".split())
                texts, labels = parts["test" if pmid in test_ids else "train"]
                texts.append(text)
                labels.append(PUBMEDQA_CLASSES.index(r["final_decision"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"cannot read PubMedQA from {folder}: {type(exc).__name__}: {exc}") from None
        return DatasetSplits(name="pubmedqa", modality="text", classes=list(PUBMEDQA_CLASSES),
                             train=_split(*parts["train"], "pubmedqa train"), test=_split(*parts["test"], "pubmedqa test"))


@DATASETS.register("medqa", modality="text", classes=MEDQA_OPTIONS, license="MIT (MedQA repository)",
                   train_per_class=(228, 184, 221, 140), test_per_class=(125, 125, 125, 125))
class MedQA:
    """MedQA-USMLE 4 options as multiple choice: an item (question + options) -> the correct letter."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def load(self) -> DatasetSplits:
        folder = _verified("medqa", MEDQA_FILES, self.data_dir)
        texts, labels = [], []
        try:
            for line in (folder / MEDQA_FILES[0].name).read_text().splitlines():
                if not line.strip():
                    continue
                r = json.loads(line)
                letters = CHOICE_LETTERS[:MEDQA_OPTIONS]
                texts.append(format_choice_item(r["question"], [r["options"][k] for k in letters]))
                labels.append(letters.index(r["answer_idx"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"cannot read MedQA from {folder}: {type(exc).__name__}: {exc}") from None
        y = np.asarray(labels, dtype=np.int64)
        rng = np.random.default_rng(SPLIT_SEED)
        test = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:MEDQA_TEST_PER_LETTER]
                                       for c in range(MEDQA_OPTIONS)]))
        is_test = np.zeros(len(y), dtype=bool)
        is_test[test] = True
        all_texts = _split(texts, labels, "medqa")
        return DatasetSplits(name="medqa", modality="text", classes=list(CHOICE_LETTERS[:MEDQA_OPTIONS]),
                             train=all_texts.subset(np.flatnonzero(~is_test)), test=all_texts.subset(test))
