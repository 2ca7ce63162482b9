"""Text data in the harness: how a text split holds its inputs, and the multiple-choice item format.

A text split's `x` is a one-dimensional numpy object array. Each element is
  - a string (a review, a question with its context, a multiple-choice item in the `choice_item` format), or
  - a float32 vector (numpy array) of the task model's embedding space: an example that exists only
    there. Strategies that synthesise in that space (SMOTE, DP-GAN's vector variant) produce these, through
    the task model's optional `embed` hook (bench.synthesis.embedding_view); a text task model that takes
    embeddings trains on them directly, and text-quality metrics (BERTScore, BLEU) skip them (they are
    not text).
An object array keeps indexing, subsetting and concatenation (bench.synthesis.concat) uniform with the
other modalities. The sentence encoder itself, and its per-text embedding cache, live with the text task
models (the text models' plug-in folder); the core names no encoder.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np

from bench.errors import BenchError


def text_array(items: Iterable[Any]) -> np.ndarray:
    """A text split's `x`: a 1-d object array (strings, or embeddings for embedding-space examples)."""
    items = list(items)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def is_text(item: Any) -> bool:
    return isinstance(item, str)


def texts_of(x: Any) -> list[str]:
    """The strings of a text split's inputs (embedding-space examples left out)."""
    return [t for t in np.asarray(x, dtype=object).reshape(-1) if isinstance(t, str)]


def check_texts(texts: Sequence[Any], what: str) -> None:
    """BenchError naming the first empty or non-string input of `what`."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BenchError(f"{what}: item {i} is {type(t).__name__}, not text")
        if not t.strip():
            raise BenchError(f"{what}: item {i} is an empty text")


# A multiple-choice item (MedQA) is one string: the question, then one line per option, "(A) ...",
# "(B) ...", in order. Its label is the index of the correct option (class "A" = 0). Keeping an item a
# single string lets it flow through splits, caches and generators like any other text.
CHOICE_LETTERS = "ABCDEFGH"
_OPTION = re.compile(r"^\(([A-H])\) (.*)$")


def format_choice_item(question: str, options: Sequence[str]) -> str:
    if not 2 <= len(options) <= len(CHOICE_LETTERS):
        raise BenchError(f"a multiple-choice item needs 2 to {len(CHOICE_LETTERS)} options, got {len(options)}")
    lines = [" ".join(question.split())]
    lines += [f"({CHOICE_LETTERS[i]}) {' '.join(str(o).split())}" for i, o in enumerate(options)]
    return "\n".join(lines)


def parse_choice_item(item: str, options: int | None = None) -> tuple[str, list[str]] | None:
    """(question, options) of an item in the format above, or None if it is not one (or has another
    number of options than `options`): the options are the trailing lines "(A) ...", "(B) ...", in order."""
    lines = [ln.strip() for ln in item.strip().split("\n")]
    matches: list[re.Match[str]] = []
    while lines and (m := _OPTION.match(lines[-1])):
        matches.insert(0, m)
        lines.pop()
    letters = "".join(m.group(1) for m in matches)
    if letters.rfind("A") > 0:  # a question line that itself looks like an option: keep only the last run
        lines += [m.group(0) for m in matches[: letters.rfind("A")]]
        matches = matches[letters.rfind("A"):]
        letters = letters[letters.rfind("A"):]
    question = " ".join(" ".join(lines).split())
    found = [m.group(2).strip() for m in matches]
    if (len(found) < 2 or letters != CHOICE_LETTERS[: len(found)] or not question or not all(found)
            or (options is not None and len(found) != options)):
        return None
    return question, found

