"""Text metrics: quality of the synthetic texts a strategy adds (`ctx.synthetic`) and the answer
accuracy of multiple-choice tasks.

| metric | direction | what |
|---|---|---|
| `bertscore` | higher | mean BERTScore F1 of each synthetic text with its nearest real text (MiniLM, unrescaled) |
| `bleu` | higher | sacrebleu corpus BLEU-4 (0-100) of the synthetic texts, each with its nearest real text |
| `self_bleu` | lower | mean sentence BLEU (0-100) of each synthetic text against the others (Texygen): 100 = alike |
| `exact_match` | higher | share of test questions answered with the correct option (accuracy on answer letters) |

`coverage`, `density`, `one_nn_accuracy` (metrics/image_quality.py) and `detection_auc`
(metrics/table_quality.py) also apply to text, on the MiniLM embeddings of the text models' encoder
(benchmarks/models/minilm_encoder.py); `chance_accuracy` (metrics/classification.py) gives the level of a
uniform guess beside them.

The reference of a synthetic text for `bertscore` and `bleu` is its nearest real text: the training
text (of `task.train`, the real budget the generator saw) with the highest cosine similarity of MiniLM
embeddings (minilm_encoder.embed, unit-length, so the dot product). A synthetic text is thus scored against
the real text it resembles most, not against an arbitrary one; an exact copy scores 100 BLEU and F1 1,
which reads as fidelity here and as memorisation in `dcr`-style terms, so read them together with
`self_bleu` and `coverage`.

Only strings are scored: examples that exist only in embedding space (SMOTE, see bench.text) are not
text, so a strategy that added no strings gets None, as does one that added nothing. Otherwise each
returns a `Measured`, recording the synthetic texts it scored (`{"synthetic": n}`: fewer than `samples`
where the strategy wrote fewer). At a few dozen texts these are noisy; the suites ask for 200. Every subset is
drawn from `task.seed`, so a cell's values are reproducible. Nothing downloads: BERTScore runs the
local MiniLM folder (minilm_encoder.encoder_path).
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from bench.api import EvalContext, Measured
from bench.errors import BenchError
from bench.registry import METRICS
from bench.text import texts_of

from ..benchmarks.models.minilm_encoder import embed, encoder_path
from .classification import accuracy

TEXT = ("text",)
MAX_NGRAM = 4  # BLEU-4
MINILM_LAYERS = 6  # all layers of all-MiniLM-L6-v2: its last layer, the one its sentence embeddings pool


def _synthetic_texts(ctx: EvalContext, samples: int) -> list[str] | None:
    """A seeded subset of at most `samples` synthetic strings, or None when the strategy added none."""
    if samples < 1:
        raise BenchError(f"text-quality metrics need a positive sample count, got {samples}")
    if ctx.synthetic is None or len(ctx.synthetic) == 0:
        return None
    texts = texts_of(ctx.synthetic.x)
    if not texts:
        return None
    if len(texts) > samples:
        idx = np.sort(np.random.default_rng(ctx.task.seed).choice(len(texts), samples, replace=False))
        texts = [texts[i] for i in idx]
    return texts


def _nearest_real(ctx: EvalContext, texts: list[str]) -> list[str]:
    """Each text's nearest real training text by cosine similarity of MiniLM embeddings."""
    real = texts_of(ctx.task.train.x)
    if not real:
        raise BenchError("text-quality metrics need real training texts to compare with")
    device = str(getattr(ctx.task, "device", "cpu"))
    similarity = embed(texts, device=device) @ embed(real, device=device).T  # unit vectors: cosine
    return [real[i] for i in similarity.argmax(axis=1)]


@functools.lru_cache(maxsize=2)
def _bert_scorer(device: str) -> Any:
    from bert_score import BERTScorer

    # model_type is the local folder, so transformers loads from disk; no `lang`, no baseline file
    # (rescale_with_baseline needs `lang` and ships baselines only for the hub models).
    return BERTScorer(model_type=encoder_path(), num_layers=MINILM_LAYERS, device=device,
                      rescale_with_baseline=False, idf=False)


@METRICS.register("bertscore", higher_is_better=True, modalities=TEXT, needs="synthetic")
def bertscore(ctx: EvalContext, samples: int = 200) -> Measured | None:
    """Mean BERTScore F1 (Zhang et al. 2020) of at most `samples` synthetic texts (a seeded subset),
    each against its nearest real training text. MiniLM-based and unrescaled: the token embeddings are
    the 6th (last) layer of the local all-MiniLM-L6-v2, no idf weighting, no baseline rescaling, texts
    truncated at 512 word pieces. Its scale is MiniLM's (200 IMDB reviews against their nearest of 200
    other reviews: 0.48), so it is comparable between strategies of this harness, not with BERTScores
    published with the roberta-large default or rescaled ones. None when the strategy added no text.
    Cost: 52 s for 200 IMDB reviews (about 300 word pieces each) against their nearest real reviews on
    one CPU thread of the shared 2-core machine, the MiniLM embeddings for the nearest-text search
    already cached."""
    texts = _synthetic_texts(ctx, samples)
    if texts is None:
        return None
    refs = _nearest_real(ctx, texts)
    _, _, f1 = _bert_scorer(str(getattr(ctx.task, "device", "cpu"))).score(texts, refs, verbose=False)
    return Measured(float(f1.mean()), {"synthetic": len(texts)})


@METRICS.register("bleu", range=(0, 100), higher_is_better=True, modalities=TEXT, needs="synthetic")
def bleu(ctx: EvalContext, samples: int = 1000) -> Measured | None:
    """sacrebleu's corpus BLEU-4 (default 13a tokenisation, case-sensitive, 0-100) of at most
    `samples` synthetic texts (a seeded subset), each with its nearest real training text as its one
    reference: n-gram overlap with the closest real text (100 for copies). None when the strategy
    added no text."""
    from sacrebleu import corpus_bleu

    texts = _synthetic_texts(ctx, samples)
    if texts is None:
        return None
    return Measured(float(corpus_bleu(texts, [_nearest_real(ctx, texts)]).score), {"synthetic": len(texts)})


@METRICS.register("self_bleu", range=(0, 100), higher_is_better=False, modalities=TEXT, needs="synthetic")
def self_bleu(ctx: EvalContext, samples: int = 100) -> Measured | None:
    """Self-BLEU (Zhu et al. 2018, Texygen), a diversity score: within a seeded subset of at most
    `samples` synthetic texts, the mean sentence BLEU-4 (0-100) of each text with all the others as its
    references. 100 when the texts are all alike, lower for varied ones. More references raise it, so
    compare values at equal `samples`. sacrebleu's sentence BLEU (13a tokens, exponential smoothing,
    effective order), as `sacrebleu.sentence_bleu(text, others)` gives it, computed from each text's
    n-grams once (see `_self_bleu_scores`). Null, with the reason, for a single synthetic text."""
    texts = _synthetic_texts(ctx, samples)
    if texts is None:
        return None
    if len(texts) < 2:
        return Measured(None, {"synthetic": len(texts)}, "self-BLEU needs two synthetic texts")
    return Measured(float(np.mean(_self_bleu_scores(texts))), {"synthetic": len(texts)})


def _self_bleu_scores(texts: list[str]) -> list[float]:
    """Each text's `sacrebleu.sentence_bleu(text, the other texts).score`, equal to it (tested).

    sentence_bleu re-extracts the n-grams of every reference on each call: N^2 extractions, 30 s for
    100 IMDB reviews (230 words) on one core. Here each text's n-grams are counted once, and for every
    n-gram the two largest counts and the text holding the largest are kept: the clipping count of a
    hypothesis n-gram against all other texts is then the largest count unless the hypothesis holds
    it, else the second largest. The statistics go through sacrebleu's own BLEU.compute_bleu."""
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    metric = BLEU(effective_order=True)  # what sacrebleu.sentence_bleu uses
    counted = [extract_all_word_ngrams(metric.tokenizer(t.rstrip()), 1, MAX_NGRAM) for t in texts]
    top: dict[tuple[str, ...], list[int]] = {}  # n-gram -> [largest count, its text, second largest]
    for i, (ngrams, _) in enumerate(counted):
        for gram, count in ngrams.items():
            best = top.setdefault(gram, [0, -1, 0])
            if count > best[0]:
                best[:] = [count, i, best[0]]
            elif count > best[2]:
                best[2] = count
    lengths = [length for _, length in counted]
    scores = []
    for i, (ngrams, hyp_len) in enumerate(counted):
        correct, total = [0] * MAX_NGRAM, [0] * MAX_NGRAM
        for gram, count in ngrams.items():
            best = top[gram]
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, best[2] if best[1] == i else best[0])
        others = lengths[:i] + lengths[i + 1:]
        ref_len = min(others, key=lambda n: (abs(hyp_len - n), n))  # closest, the shorter on ties (sacrebleu)
        scores.append(BLEU.compute_bleu(correct, total, hyp_len, ref_len, smooth_method=metric.smooth_method,
                                        smooth_value=metric.smooth_value, effective_order=True,
                                        max_ngram_order=MAX_NGRAM).score)
    return scores


@METRICS.register("exact_match", range=(0, 1), chance="majority", higher_is_better=True, modalities=TEXT)
def exact_match(ctx: EvalContext) -> float:
    """Share of test questions whose chosen option (the arg-max of the predicted probabilities over the
    options) is the correct one. For multiple-choice data the classes are the options (MedQA's answer
    letters A-D, PubMedQA's yes/no/maybe), so this is `accuracy`, computed by it; the name is the one QA
    papers report.
    There is no free-text answer to normalise: the model picks among the options."""
    return accuracy(ctx)
