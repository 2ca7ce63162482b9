"""Text metrics (metrics/text_quality.py, and the text paths of coverage, density, one_nn_accuracy and
detection_auc) on small hand-made texts whose right answers are known: copies, unrelated topics,
duplicates. The MiniLM encoder loads offline in about a second; the texts are short, so encoding them
takes a few seconds on one thread."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench.api import EvalContext, Measured, Split
from bench.benchmarks.models.minilm_encoder import embed
from bench.evaluation import evaluate
from bench.registry import METRICS
from bench.text import text_array

MOVIES = [
    "The movie was a delight from start to finish.",
    "I loved the acting and the soundtrack of this film.",
    "A boring plot with wooden dialogue and no surprises.",
    "The director keeps the tension high until the final scene.",
    "This sequel is worse than the original in every way.",
    "The cast gives warm and funny performances.",
    "I fell asleep halfway through this dull picture.",
    "Beautiful photography, but the story drags on far too long.",
    "An instant classic that I will watch again with my kids.",
    "The script is clumsy and the jokes fall flat.",
    "A moving drama about a family torn apart by war.",
    "The special effects look cheap and the villain is silly.",
]
UNRELATED = [
    "Mix the flour with two eggs and a cup of milk.",
    "The central bank raised interest rates by a quarter point.",
    "Sodium chloride dissolves readily in water at room temperature.",
    "Turn left at the second traffic light, then park near the pharmacy.",
    "The router firmware update fixes a memory leak in the kernel driver.",
    "Apply fertiliser to the tomato plants every two weeks in spring.",
    "Quarterly revenue grew eight percent on strong cloud sales.",
    "Replace the air filter before the engine oil is changed.",
    "The enzyme binds its substrate at the active site.",
    "Our flight to Oslo was delayed by a snow storm.",
    "The invoice must be paid within thirty days of delivery.",
    "Prune the rose bushes after the last frost.",
]


def make_ctx(train: list, synthetic: list | None, test: list | None = None, seed: int = 0) -> EvalContext:
    """What the text metrics read: the real budget, the test texts, the seed, the modality and the
    synthetic split (strings, or embeddings for embedding-space examples)."""
    def split(items: list) -> Split:
        return Split(text_array(items), np.zeros(len(items), dtype=np.int64))

    test_split = split(MOVIES if test is None else test)
    task = SimpleNamespace(train=split(train), test=test_split, seed=seed, device="cpu",
                           data=SimpleNamespace(modality="text", classes=["neg", "pos"]),
                           model=SimpleNamespace(name="minilm_head", params={}))
    return EvalContext(task=task, classifier=None, y_true=test_split.y, probs=np.full((len(test_split), 2), 0.5),
                       synthetic=None if synthetic is None else split(synthetic))


def metric(name: str, ctx: EvalContext, **params):
    """The metric's value (a synthetic-quality metric returns it in a Measured, with its sample counts)."""
    out = METRICS.get(name)(ctx, **params)
    return out.value if isinstance(out, Measured) else out


# ---- BERTScore, BLEU, self-BLEU ------------------------------------------------------------------

def test_bertscore_of_copies_is_one_and_above_unrelated_texts():
    copies = metric("bertscore", make_ctx(MOVIES, MOVIES[::-1]))  # each copy's nearest real text is itself
    unrelated = metric("bertscore", make_ctx(MOVIES, UNRELATED))
    assert copies == pytest.approx(1.0, abs=1e-4)
    assert unrelated < copies - 0.2


def test_bertscore_runs_the_local_minilm_unrescaled():
    from bench.benchmarks.models.minilm_encoder import encoder_path
    from bench.metrics.text_quality import _bert_scorer

    scorer = _bert_scorer("cpu")
    assert scorer.model_type == encoder_path() and scorer.num_layers == 6
    assert not scorer.rescale_with_baseline and not scorer.idf


def test_bleu_of_copies_is_100_and_of_unrelated_texts_low():
    assert metric("bleu", make_ctx(MOVIES, MOVIES[:6])) == pytest.approx(100.0)
    assert metric("bleu", make_ctx(MOVIES, UNRELATED)) < 10


def test_bleu_compares_each_text_with_its_nearest_real_text():
    """A near-copy of one real text is scored against that text, whatever its position."""
    near = [MOVIES[7].replace("far too long", "much too long")]
    assert metric("bleu", make_ctx(MOVIES, near)) > 50


def test_self_bleu_of_duplicates_is_100_and_of_varied_texts_lower():
    assert metric("self_bleu", make_ctx(MOVIES, [MOVIES[0]] * 5)) == pytest.approx(100.0)
    assert metric("self_bleu", make_ctx(MOVIES, MOVIES)) < 30


def test_self_bleu_equals_sacrebleu_sentence_bleu_against_the_others():
    """The one-pass n-gram index gives what sacrebleu.sentence_bleu(text, others) gives, with repeated
    n-grams (clipping by the largest other count) and length ties (the shorter reference length)."""
    import sacrebleu

    from bench.metrics.text_quality import _self_bleu_scores

    texts = MOVIES[:6] + [MOVIES[0], "the the the movie movie", "the movie the movie the movie",
                          "a b c d e f g h i j k l"]
    expected = [sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)]
    assert _self_bleu_scores(texts) == pytest.approx(expected, abs=1e-9)


def test_subsets_are_seeded_by_the_task_seed():
    texts = MOVIES + UNRELATED
    a, b = (metric("self_bleu", make_ctx(MOVIES, texts, seed=s), samples=6) for s in (0, 0))
    c = metric("self_bleu", make_ctx(MOVIES, texts, seed=1), samples=6)
    assert a == b != c


def test_not_applicable_without_synthetic_text():
    embeddings_only = list(embed(text_array(MOVIES[:3])))  # SMOTE-like: points of the embedding space
    for synthetic in (None, [], embeddings_only):
        ctx = make_ctx(MOVIES, synthetic)
        assert all(metric(name, ctx) is None for name in ("bertscore", "bleu", "self_bleu")), synthetic
    mixed = make_ctx(MOVIES, embeddings_only + MOVIES[:2])  # only the strings are scored
    assert metric("bleu", mixed) == pytest.approx(100.0)
    assert metric("coverage", make_ctx(MOVIES, None)) is None
    assert metric("detection_auc", make_ctx(MOVIES, None)) is None


# ---- coverage, density, 1-NN and detection on MiniLM embeddings -----------------------------------

def test_coverage_and_density_on_text_embeddings():
    copies = make_ctx(MOVIES, MOVIES)
    unrelated = make_ctx(MOVIES, UNRELATED)
    assert metric("coverage", copies, nearest_k=3) == pytest.approx(1.0)
    assert metric("density", copies, nearest_k=3) > 0.9
    assert metric("coverage", unrelated, nearest_k=3) < 0.2
    assert metric("density", unrelated, nearest_k=3) < 0.2
    assert metric("one_nn_accuracy", copies) <= 0.5  # each copy's nearest neighbour is its original
    assert metric("one_nn_accuracy", unrelated) > 0.9


def test_embedding_space_examples_are_points_of_the_same_space():
    as_vectors = make_ctx(MOVIES, list(embed(text_array(UNRELATED[:6]))) + MOVIES[:6])
    as_texts = make_ctx(MOVIES, UNRELATED[:6] + MOVIES[:6])
    for name in ("coverage", "density", "one_nn_accuracy"):
        assert metric(name, as_vectors) == pytest.approx(metric(name, as_texts), abs=1e-6), name


def templated(n: int, seed: int, topic: str) -> list[str]:
    """`n` short texts from one of two template distributions (film reviews or market news)."""
    rng = np.random.default_rng(seed)
    words = {
        "film": ("The {} film had {} acting and a {} plot.", ["new", "old", "long", "short", "French"],
                 ["great", "poor", "subtle", "wooden", "lively"], ["clever", "thin", "gripping", "silly", "slow"]),
        "market": ("Shares of the {} bank fell {} percent after {} results.",
                   ["regional", "national", "German", "small", "largest"], ["two", "three", "five", "eight", "ten"],
                   ["weak", "mixed", "late", "poor", "flat"]),
    }
    template, *choices = words[topic]
    return [template.format(*(c[rng.integers(len(c))] for c in choices)) for _ in range(n)]


def test_detection_auc_tells_different_texts_apart_but_not_alike_ones():
    train = templated(40, 0, "film")
    alike = metric("detection_auc", make_ctx(train, templated(40, 1, "film")), model="logistic")
    different = metric("detection_auc", make_ctx(train, templated(40, 2, "market")), model="logistic")
    assert abs(alike - 0.5) < 0.2
    assert different > 0.95
    assert metric("detection_auc", make_ctx(train, templated(40, 2, "market"))) > 0.9  # the default detector


# ---- multiple-choice accuracy and the chance level -----------------------------------------------

def test_exact_match_is_accuracy_and_chance_accuracy_is_one_over_c():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 50)
    ctx = EvalContext(task=None, classifier=None, y_true=rng.integers(0, 4, 50), probs=probs, synthetic=None)
    expected = float(np.mean(probs.argmax(1) == ctx.y_true))
    assert metric("exact_match", ctx) == pytest.approx(expected) == metric("accuracy", ctx)
    assert metric("chance_accuracy", ctx) == 0.25  # MedQA's four options
    two = EvalContext(task=None, classifier=None, y_true=np.zeros(3, dtype=np.int64), probs=np.eye(2)[[0, 0, 1]],
                      synthetic=None)
    specs = [SimpleNamespace(name="chance_accuracy", params={}), SimpleNamespace(name="exact_match", params={})]
    out = evaluate(specs, two)
    assert out["chance_accuracy"] == {"value": 0.5, "higher_is_better": True}
    assert out["exact_match"]["value"] == pytest.approx(2 / 3)


def test_registered_with_direction_and_modalities():
    expected = {"bertscore": (True, ("text",)), "bleu": (True, ("text",)), "self_bleu": (False, ("text",)),
                "exact_match": (True, ("text",)), "coverage": (True, ("image", "text")),
                "density": (True, ("image", "text")), "one_nn_accuracy": (False, ("image", "text")),
                "detection_auc": (False, ("tabular", "text"))}
    for name, (higher, modalities) in expected.items():
        assert METRICS.caps(name).higher_is_better is higher and METRICS.caps(name).modalities == modalities, name
    assert "text" in METRICS.caps("chance_accuracy").modalities
