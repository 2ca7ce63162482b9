"""The language-model text generator (method/generators/text_lm.py): template checks, per-row sampling math, choice
items, the generation cache, reproducibility, pickling, LoRA and --lm-path. The tests that load
SmolLM2-135M share one load per process (about 10-50 s on the 2-core CPU) and generate a few short texts, on
the transformers backend (llama.cpp: tests/test_text_lm_llama.py)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.config import load_suite
from bench.errors import BenchError
from bench.method.generators import text_lm
from bench.method.generators.text_lm import (
    InstructionLM,
    RowTemperaturePenalty,
    SeededTopPSampler,
    clean_output,
    clean_stem,
    move_answer,
)
from bench.registry import GENERATORS
from bench.text import format_choice_item, parse_choice_item, text_array

SENTIMENT = DatasetInfo(name="t", modality="text", classes=("negative", "positive"))
LETTERS = DatasetInfo(name="q", modality="text", classes=("A", "B", "C", "D"))
REVIEWS = Split(text_array(["A wonderful film with great acting.", "Dull and far too long.",
                            "I loved every minute of it.", "A waste of two hours."]), np.array([1, 0, 1, 0]))
OPTIONS = [["Aspirin", "Heparin", "Warfarin", "Alteplase"], ["Asthma", "COPD", "Pneumonia", "Sarcoidosis"],
           ["Iron", "Folate", "B12", "Vitamin C"]]
STEMS = ["A 60-year-old man has sudden chest pain radiating to the left arm. Which drug is given first?",
         "A 30-year-old woman has wheezing at night relieved by an inhaler. What is the diagnosis?",
         "A vegan woman has fatigue and numb feet with macrocytic anaemia. Which deficiency is most likely?"]
ITEMS = Split(text_array([format_choice_item(q, o) for q, o in zip(STEMS, OPTIONS)]), np.array([3, 0, 2]))


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("params,message", [
    ({"class_prompt": "Write a review."}, "class_prompt 'Write a review.' must contain {label}"),
    ({"seed_prompt": "Make it {label}."}, "must contain {label} and {text}"),
    ({"seed_prompt": "Rewrite: {text}"}, "must contain {label} and {text}"),
    ({"class_prompt": "A {label} review by {author}"}, "no other field (has author)"),
    ({"class_prompt": "A {label review"}, "is not a valid template"),
    ({"item_format": "choice", "seed_prompt": "Rewrite this question."}, "must contain {text}"),
    ({"item_format": "table"}, "item_format must be text or choice"),
    ({"temperature": 2.0}, "temperature <= max_temperature"),
    ({"lora": True, "item_format": "choice"}, "lora applies to item_format text"),
])
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(BenchError, match="generator 'smollm2': bad parameters") as info:
        GENERATORS.build("smollm2", params)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_choice_seed_prompt_needs_no_label():
    gen = GENERATORS.build("smollm2", {"item_format": "choice", "seed_prompt": "Reword: {text}"})
    assert gen.seed_prompt_ == "Reword: {text}"
    assert GENERATORS.build("smollm2", {"item_format": "choice"}).seed_prompt_ == text_lm.CHOICE_PROMPT
    assert GENERATORS.build("smollm2", {}).seed_prompt_ == text_lm.SEED_PROMPT


# -- per-row sampling ---------------------------------------------------------------------------


def test_row_temperature_and_penalty_math():
    scores = torch.tensor([[2.0, -1.0, 0.5, 4.0], [2.0, -1.0, 0.5, 4.0]])
    # prompt of 2 tokens (token 3 in it must not be penalised), then generated tokens 0 and 1 (row 0), 1 (row 1)
    input_ids = torch.tensor([[3, 3, 0, 1], [3, 3, 1, 1]])
    proc = RowTemperaturePenalty(torch.tensor([0.5, 2.0]), torch.tensor([2.0, 1.5]), prompt_length=2)
    out = proc(input_ids, scores)
    expected = torch.tensor([[2.0 / 2.0 / 0.5, -1.0 * 2.0 / 0.5, 0.5 / 0.5, 4.0 / 0.5],
                             [2.0 / 2.0, -1.0 * 1.5 / 2.0, 0.5 / 2.0, 4.0 / 2.0]])
    torch.testing.assert_close(out, expected)
    # nothing generated yet: temperature only
    torch.testing.assert_close(proc(input_ids[:, :2], scores), scores / torch.tensor([[0.5], [2.0]]))


def test_top_p_sampler_is_seeded_and_keeps_the_nucleus():
    scores = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]))
    ids = torch.zeros((2, 1), dtype=torch.long)

    def draws(seed: int, top_p: float, times: int = 200) -> np.ndarray:
        sampler = SeededTopPSampler(top_p, torch.Generator().manual_seed(seed))
        rows = []
        for _ in range(times):
            out = sampler(ids, scores)
            assert torch.isinf(out).sum(dim=1).tolist() == [2, 2] and (out.max(dim=1).values == 0).all()
            rows.append(out.argmax(dim=1).numpy())
        return np.stack(rows)

    np.testing.assert_array_equal(draws(0, 0.95), draws(0, 0.95))
    assert not np.array_equal(draws(0, 0.95), draws(1, 0.95))
    assert (draws(0, 0.5)[:, 0] == 0).all() and (draws(0, 0.5)[:, 1] == 2).all()  # nucleus of one token
    nucleus = draws(0, 0.8)  # row 0: {0, 1} (0.6 + 0.3 >= 0.8); never token 2
    assert set(nucleus[:, 0]) == {0, 1}


def test_top_p_nucleus_larger_than_the_first_candidates_is_exact():
    torch.manual_seed(0)
    scores = torch.randn(2, 5000) * 0.3  # flat: the 0.9 nucleus holds thousands of tokens
    sorted_p, order = torch.softmax(scores, -1).sort(dim=-1, descending=True)
    nucleus = [set(order[r][(sorted_p[r].cumsum(0) - sorted_p[r]) < 0.9].tolist()) for r in range(2)]
    assert min(map(len, nucleus)) > 4 * SeededTopPSampler.first_k
    sampler = SeededTopPSampler(0.9, torch.Generator().manual_seed(0))
    drawn = torch.stack([sampler(torch.zeros((2, 1), dtype=torch.long), scores).argmax(1) for _ in range(300)])
    for r in range(2):
        assert set(drawn[:, r].tolist()) <= nucleus[r]
        assert len(set(drawn[:, r].tolist()) - set(order[r][: SeededTopPSampler.first_k].tolist())) > 0


def test_uncertainty_sets_temperature_and_penalty_per_row(monkeypatch):
    gen = InstructionLM().fit(REVIEWS, SENTIMENT, seed=0)
    seen = {}

    def fake_generate(users, temps, pens, budgets, stems, rng, must):
        seen.update(users=users, temps=temps, pens=pens, must=must)
        return [f"text {i}" for i in range(len(users))]

    monkeypatch.setattr(gen, "generate", fake_generate)
    cond = Conditions(labels=np.array([0, 1, 0, 1]), seeds=REVIEWS.x, uncertainty=np.array([0.0, 0.5, 1.0, 3.0]))
    out = gen.sample(4, cond, np.random.default_rng(0))
    np.testing.assert_allclose(seen["temps"], [0.7, 1.1, 1.5, 1.5])
    np.testing.assert_allclose(seen["pens"], [1.1, 1.2, 1.3, 1.3])
    assert seen["users"][1] == text_lm.SEED_PROMPT.format(label="positive", text=REVIEWS.x[1]) and not seen["must"]
    assert list(out.x) == [f"text {i}" for i in range(4)] and out.y.tolist() == [0, 1, 0, 1]
    gen.sample(2, Conditions(labels=np.array([1, 0])), np.random.default_rng(0))  # no uncertainty: base values
    np.testing.assert_allclose(seen["temps"], [0.7, 0.7])
    np.testing.assert_allclose(seen["pens"], [1.1, 1.1])
    assert seen["users"] == [text_lm.CLASS_PROMPT.format(label="positive"),
                             text_lm.CLASS_PROMPT.format(label="negative")] and seen["must"]
    prompts = ["an ambiguous case between positive and negative", "an ambiguous case between negative and positive"]
    gen.sample(2, Conditions(labels=np.array([1, 0]), seeds=REVIEWS.x[:2], prompts=prompts), np.random.default_rng(0))
    assert seen["users"][0] == f"{prompts[0]}\n\n{REVIEWS.x[0]}"
    with pytest.raises(ValueError, match="finite uncertainties"):
        gen.sample(1, Conditions(labels=np.array([1]), seeds=REVIEWS.x[:1], uncertainty=np.array([np.nan])),
                   np.random.default_rng(0))


def test_empty_rewrites_fall_back_to_the_seed_and_are_counted(monkeypatch):
    gen = InstructionLM().fit(REVIEWS, SENTIMENT, seed=0)
    monkeypatch.setattr(gen, "generate", lambda users, *a, **k: ["new", "", "new", ""])
    out = gen.sample(4, Conditions(labels=np.array([0, 1, 0, 1]), seeds=REVIEWS.x), np.random.default_rng(0))
    assert list(out.x) == ["new", REVIEWS.x[1], "new", REVIEWS.x[3]]
    assert gen.stats_["fallbacks"] == 2 and gen.stats_["examples"] == 4
    copies = gen.sample(2, Conditions(labels=np.array([1, 1]), seeds=REVIEWS.x[:2], strength=0.0),
                        np.random.default_rng(0))  # strength 0: the seeds themselves
    assert list(copies.x) == list(REVIEWS.x[:2])


def test_output_cleaning():
    assert clean_output('  Here is the rewritten review:\n\n"A bold, moving film."  ') == "A bold, moving film."
    assert clean_output("Sure! Here's a short positive review:\nGreat.") == "Great."
    assert clean_output("Here is why I loved it: the cast.") == "Here is why I loved it: the cast."
    assert clean_output("Here is the review:") == ""
    seed = "A man of 60 has chest pain. Which drug first?"
    assert clean_stem("A 60-year-old man with chest pain: which drug is first?\n(A) Aspirin\n(B) Heparin", seed,
                      True) == "A 60-year-old man with chest pain: which drug is first?"
    assert clean_stem("A 60-year-old man with chest pain: which drug", seed, False) == ""  # cut at its budget
    assert clean_stem("Pain.", seed, True) == ""  # degenerate: far shorter than the seed


# -- multiple-choice items ----------------------------------------------------------------------


def test_move_answer_and_round_trip():
    assert move_answer(["a", "b", "c", "d"], correct=3, target=1) == ["a", "d", "c", "b"]
    assert move_answer(["a", "b", "c", "d"], correct=2, target=2) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        move_answer(["a", "b"], correct=0, target=2)
    item = format_choice_item(STEMS[0], move_answer(OPTIONS[0], 3, 0))
    assert parse_choice_item(item) == (STEMS[0], ["Alteplase", "Heparin", "Warfarin", "Aspirin"])


def test_choice_items_move_the_answer_to_the_target(monkeypatch):
    gen = InstructionLM(item_format="choice").fit(ITEMS, LETTERS, seed=0)
    replies = ["A man, 60, with chest pain spreading to his left arm: which drug comes first?", ""]
    seen = {}

    def fake_generate(users, temps, pens, budgets, stems, rng, must):
        seen.update(users=users, budgets=budgets, stems=stems)
        return replies[: len(users)]

    monkeypatch.setattr(gen, "generate", fake_generate)
    targets = np.array([1, 2])
    out = gen.sample(2, Conditions(labels=targets, seeds=ITEMS.x[:2], seed_labels=ITEMS.y[:2]),
                     np.random.default_rng(0))
    assert seen["stems"] == STEMS[:2] and seen["users"][0] == text_lm.CHOICE_PROMPT.format(text=STEMS[0])
    assert seen["budgets"][0] == max(96, 2 * len(STEMS[0].split()) + 16)
    first, second = parse_choice_item(out.x[0]), parse_choice_item(out.x[1])
    assert first[0] == replies[0] and second[0] == STEMS[1]  # an empty rewrite keeps the seed's stem
    assert first[1][1] == "Alteplase" and second[1][2] == "Asthma"  # each correct option at its target letter
    assert sorted(first[1]) == sorted(OPTIONS[0]) and out.y.tolist() == [1, 2]
    assert gen.stats_["fallbacks"] == 1
    # seeds from the unlabelled pool (no answer keys): the target label is taken as the answer, options unmoved
    kept = gen.sample(1, Conditions(labels=np.array([3]), seeds=ITEMS.x[:1]), np.random.default_rng(0))
    assert parse_choice_item(kept.x[0])[1] == OPTIONS[0] and kept.y.tolist() == [3]
    # without seeds: items of the real budget, with their known answers
    drawn = gen.sample(2, Conditions(labels=np.array([0, 3])), np.random.default_rng(1))
    for item, target in zip(drawn.x, [0, 3]):
        stem_options = parse_choice_item(item)
        k = next(i for i, o in enumerate(OPTIONS) if sorted(o) == sorted(stem_options[1]))
        assert stem_options[1][target] == OPTIONS[k][int(ITEMS.y[k])]


def test_choice_fit_needs_choice_items():
    with pytest.raises(BenchError, match="not a multiple-choice item"):
        InstructionLM(item_format="choice").fit(REVIEWS, SENTIMENT, seed=0)


# -- with the language model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> InstructionLM:
    torch.set_num_threads(1)
    return InstructionLM(max_new_tokens=16, batch_size=4, device="cpu").fit(REVIEWS, SENTIMENT, seed=0)


def test_generation_cache_reproducibility_and_pickle(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "a"))
    cond = Conditions(labels=np.array([0, 1, 0, 1]), seeds=REVIEWS.x, uncertainty=np.array([0.0, 0.5, 1.0, 2.0]))
    first = fitted.sample(4, cond, np.random.default_rng(7))
    assert all(isinstance(t, str) and t.strip() for t in first.x)
    assert fitted.stats_["tokens"] > 0 and fitted.stats_["seconds"] > 0 and fitted.stats_["cached"] == 0
    assert len(list((tmp_path / "a" / "generations").glob("*.json"))) == 1

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "b"))  # an empty cache: generated again, same draws
    assert list(fitted.sample(4, cond, np.random.default_rng(7)).x) == list(first.x)
    assert list(fitted.sample(4, cond, np.random.default_rng(8)).x) != list(first.x)

    blob = pickle.dumps(fitted)
    assert len(blob) < 1_000_000
    clone = pickle.loads(blob)

    def no_loading(*args, **kwargs):
        raise AssertionError("a cache hit must not load the model")

    monkeypatch.setattr(text_lm, "load_lm", no_loading)
    monkeypatch.setattr(text_lm.llama_cpp_backend, "load_llama", no_loading)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "a"))
    again = clone.sample(4, cond, np.random.default_rng(7))
    assert list(again.x) == list(first.x)
    assert clone.stats_["cached"] == 4 and clone.stats_["tokens"] == 0


def test_class_prompts_and_choice_rewrites_with_the_model(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    out = fitted.sample(2, Conditions(labels=np.array([1, 0])), np.random.default_rng(0))
    assert all(t.strip() for t in out.x)
    gen = InstructionLM(item_format="choice", max_new_tokens=16, batch_size=2, device="cpu").fit(ITEMS, LETTERS, 0)
    items = gen.sample(2, Conditions(labels=np.array([0, 1]), seeds=ITEMS.x[:2], seed_labels=ITEMS.y[:2]),
                       np.random.default_rng(0))
    for item, target, k in zip(items.x, [0, 1], [0, 1]):
        stem, options = parse_choice_item(item)
        assert stem and options[target] == OPTIONS[k][int(ITEMS.y[k])]
    assert gen.stats_["generated"] + gen.stats_["fallbacks"] == 2


def test_lora_adapter_trains_pickles_and_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    torch.set_num_threads(1)
    gen = InstructionLM(lora=True, lora_steps=2, lora_batch_size=2, lora_rank=2, max_new_tokens=8,
                        device="cpu").fit(REVIEWS, SENTIMENT, seed=0)
    assert gen.adapter_ and all("lora_" in k for k in gen.adapter_) and len(gen.lora_losses_) == 2
    assert all(np.isfinite(gen.lora_losses_))
    clone = pickle.loads(pickle.dumps(gen))
    assert clone.adapter_sha_ == gen.adapter_sha_ and clone._lm is None
    cond = Conditions(labels=np.array([1, 0]))
    a = gen.sample(2, cond, np.random.default_rng(3))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "fresh"))
    b = clone.sample(2, cond, np.random.default_rng(3))  # the adapter reloaded onto a fresh copy of the base
    assert list(a.x) == list(b.x) and clone.stats_["cached"] == 0
    from peft import PeftModel, get_peft_model_state_dict

    model = clone.lm()[1]
    assert isinstance(model, PeftModel) and model is not text_lm.load_lm(*_base_key(clone))[1]
    loaded = get_peft_model_state_dict(model, save_embedding_layers=False)
    assert all(torch.equal(loaded[k].float(), v) for k, v in gen.adapter_.items())


def _base_key(gen: InstructionLM) -> tuple[str, str | None, str, str]:
    folder, gguf = gen._source()
    return str(folder), gguf, "cpu", "fp32"


# -- --lm-path ----------------------------------------------------------------------------------


def test_lm_path_sets_the_text_generators_model_path(tmp_path):
    from tiny_suite import GOOD

    text_suite = tmp_path / "text.yaml"
    text_suite.write_text(GOOD.replace("strategies: [real_only]", "strategies: [real_only, random_synthetic]")
                          + "synthetic: {generator: {name: smollm2, params: {max_new_tokens: 32}}, "
                            "budget_per_class: 2, mix_ratio: 0.5}\n")
    suite = load_suite(str(text_suite), lm_path=str(tmp_path))
    assert suite.synthetic.generator.params == {"max_new_tokens": 32, "model_path": str(tmp_path)}
    image_suite = tmp_path / "image.yaml"
    image_suite.write_text(text_suite.read_text().replace("name: smollm2", "name: pca_gmm")
                           .replace("params: {max_new_tokens: 32}", "params: {}"))
    with pytest.raises(BenchError, match="pca_gmm is not a text generator with a model_path"):
        load_suite(str(image_suite), lm_path=str(tmp_path))
    with pytest.raises(BenchError, match="has no config.json"):  # not a model folder: said before any loading
        InstructionLM(model_path=str(tmp_path)).fit(REVIEWS, SENTIMENT, 0).sample(
            1, Conditions(labels=np.array([0])), np.random.default_rng(0))
