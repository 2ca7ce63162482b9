"""The text generator's llama.cpp backend (method/generators/llama_cpp_backend.py, `backend` of smollm2): which
backend runs where, the one-line error without the binding, and, where llama-cpp-python is installed, its
generation with SmolLM2-135M (loaded in about 0.1 s; a few short texts): reproducible draws, per-row
temperature, the same prompt tokens as transformers' chat template, the cache key and the token counts."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.errors import BenchError
from bench.method.generators import llama_cpp_backend, text_lm
from bench.method.generators.text_lm import InstructionLM
from bench.registry import GENERATORS
from bench.text import format_choice_item, parse_choice_item, text_array

needs_llama = pytest.mark.skipif(not llama_cpp_backend.available(),
                                 reason="llama-cpp-python is not installed (pip install '.[llama]')")

SENTIMENT = DatasetInfo(name="t", modality="text", classes=("negative", "positive"))
REVIEWS = Split(text_array(["A wonderful film with great acting.", "Dull and far too long.",
                            "I loved every minute of it.", "A waste of two hours."]), np.array([1, 0, 1, 0]))
LETTERS = DatasetInfo(name="q", modality="text", classes=("A", "B", "C", "D"))
ITEMS = Split(text_array([format_choice_item(
    "A 60-year-old man has sudden chest pain radiating to the left arm. Which drug is given first?",
    ["Aspirin", "Heparin", "Warfarin", "Alteplase"])]), np.array([0]))
CPU = torch.device("cpu")


# -- choosing the backend (no model needed) ---------------------------------------------------------


@pytest.mark.parametrize("params,message", [
    ({"backend": "vllm"}, "backend must be transformers, llama_cpp, got 'vllm'"),
    ({"backend": "llama_cpp", "lora": True}, "backend llama_cpp runs the GGUF model without LoRA"),
    ({"backend": "llama_cpp", "model_path": "/models/llama"}, "backend llama_cpp runs the GGUF model without LoRA"),
])
def test_bad_backends_are_one_line_errors(params, message):
    with pytest.raises(BenchError, match="generator 'smollm2': bad parameters") as info:
        GENERATORS.build("smollm2", params)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_llama_cpp_runs_only_where_a_suite_asks_for_it(monkeypatch):
    monkeypatch.setattr(llama_cpp_backend, "available", lambda: True)  # installed: still not the default
    assert InstructionLM().backend_for(CPU) == "transformers"
    assert InstructionLM(backend="transformers").backend_for(CPU) == "transformers"
    assert InstructionLM(backend="llama_cpp").backend_for(CPU) == "llama_cpp"
    with pytest.raises(BenchError, match="backend llama_cpp runs on the CPU"):
        InstructionLM(backend="llama_cpp").backend_for(torch.device("cuda"))


def test_llama_cpp_without_the_binding_names_the_install_command(monkeypatch):
    monkeypatch.setattr(llama_cpp_backend, "available", lambda: False)
    gen = InstructionLM(backend="llama_cpp", device="cpu").fit(REVIEWS, SENTIMENT, seed=0)
    with pytest.raises(BenchError, match="backend llama_cpp needs llama-cpp-python") as info:
        gen.sample(1, Conditions(labels=np.array([1])), np.random.default_rng(0))
    assert "pip install" in str(info.value) and "\n" not in str(info.value)


def test_the_backend_is_recorded_in_the_cell_only_when_set():
    from bench.registry import param_record as _params  # the cell record of a component's parameters

    assert "backend" not in _params(InstructionLM())  # results made before the field keep their hash
    assert _params(InstructionLM(backend="transformers"))["backend"] == "transformers"


# -- with the model in llama.cpp ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> Iterator[InstructionLM]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the harness's one thread per worker (llama.cpp takes torch's count)
    yield InstructionLM(max_new_tokens=16, batch_size=4, device="cpu", backend="llama_cpp").fit(REVIEWS, SENTIMENT, seed=0)
    torch.set_num_threads(threads)


@needs_llama
def test_llama_cpp_draws_reproducibly(fitted, tmp_path, monkeypatch):
    assert fitted.backend_for(CPU) == "llama_cpp"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "a"))
    cond = Conditions(labels=np.array([0, 1, 0, 1]), seeds=REVIEWS.x, uncertainty=np.array([0.0, 0.5, 1.0, 2.0]))
    before = dict(fitted.stats_)
    rows: list[list[int]] = []
    lm = fitted.llama()
    real_generate = lm.generate

    def recording(prompts, processors, budget):
        out = real_generate(prompts, processors, budget)
        rows.extend(out)
        return out

    monkeypatch.setattr(lm, "generate", recording)
    first = fitted.sample(4, cond, np.random.default_rng(7))
    assert all(isinstance(t, str) and t.strip() for t in first.x)
    # tokens: each row's up to and including its end-of-turn token, within the budget; one cache entry
    assert all(1 <= len(r) <= 16 and (lm.eos not in r or r.index(lm.eos) == len(r) - 1) for r in rows)
    assert fitted.stats_["tokens"] - before["tokens"] == sum(len(r) for r in rows) > 0
    assert fitted.stats_["seconds"] > before["seconds"] and fitted.stats_["cached"] == before["cached"]
    assert len(list((tmp_path / "a" / "generations").glob("*.json"))) == 1

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "b"))  # an empty cache: generated again, same draws
    assert list(fitted.sample(4, cond, np.random.default_rng(7)).x) == list(first.x)
    assert list(fitted.sample(4, cond, np.random.default_rng(8)).x) != list(first.x)


@needs_llama
def test_the_cache_key_differs_between_backends(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    args = (["Write a short positive movie review."], np.array([0.7]), np.array([1.1]), [8], None)
    llama_text = fitted.generate(*args, np.random.default_rng(0), must=True)
    other = InstructionLM(max_new_tokens=16, batch_size=4, device="cpu", backend="transformers").fit(
        REVIEWS, SENTIMENT, seed=0)
    calls = []

    def fake_run(users, temps, pens, budgets, rows, gen, backend="transformers"):
        calls.append(backend)
        return [("a text from transformers", True)] * len(rows)

    monkeypatch.setattr(other, "_run", fake_run)  # no 50 s model load: only the key is under test
    assert other.generate(*args, np.random.default_rng(0), must=True) == ["a text from transformers"]
    assert calls == ["transformers"] and llama_text != ["a text from transformers"]
    assert len(list((tmp_path / "generations").glob("*.json"))) == 2  # the same request, another entry


@needs_llama
def test_near_zero_temperature_gives_the_greedy_text_in_every_draw(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    torch.set_num_threads(1)
    gen = InstructionLM(temperature=1e-3, max_temperature=1.5, repetition_penalty=1.0, max_repetition_penalty=1.0,
                        max_new_tokens=12, batch_size=4, device="cpu").fit(REVIEWS, SENTIMENT, seed=0)
    lm = gen.llama()
    prompt = lm.tokenize(lm.chat_text(text_lm.CLASS_PROMPT.format(label="positive")))

    def one_hot_argmax(ids, scores):
        return torch.full_like(scores, float("-inf")).scatter_(1, scores.argmax(-1, keepdim=True), 0.0)

    row = lm.generate([prompt], [one_hot_argmax], 12)[0]
    greedy = text_lm.clean_output(lm.detokenize(row[: row.index(lm.eos)] if lm.eos in row else row))
    # per row: u = 0 -> T = 0.001 (greedy), u = 1 -> T = 1.5, in one batch
    cond = Conditions(labels=np.array([1, 1, 1, 1]), uncertainty=np.array([0.0, 1.0, 0.0, 1.0]))
    draws = [list(gen.sample(4, cond, np.random.default_rng(seed)).x) for seed in range(3)]
    assert all(d[0] == d[2] == greedy for d in draws)
    assert len({d[1] for d in draws} | {d[3] for d in draws}) > 1  # T = 1.5 varies


@needs_llama
def test_prompt_tokens_and_decoding_match_transformers(fitted):
    from transformers import AutoTokenizer

    folder, gguf = fitted._source()
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf, local_files_only=True)  # ~10 s
    lm = fitted.llama()
    seed = "Ça m'a plu: a “great” film!\n\nTabs\tand  double  spaces, emoji 🎬, 日本語, <b>html</b> and <|im_end|>."
    for user in (text_lm.CLASS_PROMPT.format(label="negative"), text_lm.SEED_PROMPT.format(label="positive", text=seed),
                 text_lm.CHOICE_PROMPT.format(text=parse_choice_item(ITEMS.x[0])[0])):
        chat = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
        assert lm.chat_text(user) == chat
        ids = tok(chat, add_special_tokens=False)["input_ids"]
        assert lm.tokenize(chat) == ids
        assert lm.detokenize(ids) == tok.decode(ids, skip_special_tokens=True)
    assert lm.eos == tok.eos_token_id


@needs_llama
def test_choice_rewrites_and_batches_of_different_prompts(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    torch.set_num_threads(1)
    gen = InstructionLM(item_format="choice", max_new_tokens=16, batch_size=3, device="cpu").fit(ITEMS, LETTERS, 0)
    out = gen.sample(3, Conditions(labels=np.array([1, 2, 3]), seeds=np.array([ITEMS.x[0]] * 3, dtype=object),
                                   seed_labels=np.array([0, 0, 0])), np.random.default_rng(0))
    for item, target in zip(out.x, [1, 2, 3]):
        stem, options = parse_choice_item(item)
        assert stem and options[target] == "Aspirin"
    assert gen.stats_["generated"] + gen.stats_["fallbacks"] == 3
    # rows whose prompts share only the chat template's prefix, one batch: each row's own prompt is read
    lm = gen.llama()
    users = ["Say the word apple.", "Write one sentence about the sea and the wind.", "Reply with the number 7."]
    prompts = [lm.tokenize(lm.chat_text(u)) for u in users]

    def greedy(ids, scores):
        return torch.full_like(scores, float("-inf")).scatter_(1, scores.argmax(-1, keepdim=True), 0.0)

    together = lm.generate(prompts, [greedy], 6)
    alone = [lm.generate([p], [greedy], 6)[0] for p in prompts]
    assert together == alone
