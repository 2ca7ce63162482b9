"""Throughput benchmark (pytest-benchmark): text generation with SmolLM2-135M-Instruct (the `smollm2`
generator, method/generators/text_lm.py) at batch sizes 1, 8 and 16.

What is measured: one `sample` call of `batch` class-prompted reviews (CLASS_PROMPT, alternating
negative / positive, no seeds: base temperature 0.7, penalty 1.1, top_p 0.95), max_new_tokens 96, one
generate() call with the KV cache (left padding). Each round draws with a new rng seed and the generation
cache is a throw-away folder, so every round generates. The model is loaded (and warmed up with one short
generation) in a fixture, outside the timing.
Reported in extra_info:
  * `tokens_per_s`: new tokens (up to and including each reply's end-of-turn token; the padding of rows
    that finished early is not counted) per second of generate(), from the generator's own `stats_`;
  * `tokens_per_s_wall`: the same tokens per second of the whole `sample` call (prompt rendering,
    tokenisation, decoding and cleaning included);
  * `tokens`, `seconds`, `batch`, `torch_threads`.
A batch runs until its longest reply ends (or 96 tokens): rows that end early still cost their share of
each step, so tokens/s counts useful tokens only.

The generator runs at its `precision: auto`, float32 on the CPU (bf16 on CUDA).

How to run (the reference numbers are with one thread; the machine's other core is often busy):
  OMP_NUM_THREADS=1 pytest tests/perf/test_perf_text_lm.py --benchmark-only -s
Without `--benchmark-only` each batch size generates at most 4 new tokens; under `--benchmark-disable`
(`tox -e test`, CI) once, untimed, so that an API change fails CI. Loading the model (about 30 s on the
2-core machine) is most of that, and the model stays loaded for tests/test_text_lm.py in the same
process. The summary test then asserts no speed-up. `--benchmark-skip` skips them all.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.method.generators.text_lm import InstructionLM
from bench.text import text_array

MAX_NEW_TOKENS = 96
TINY_NEW_TOKENS = 4  # --benchmark-disable: a check that generation runs, not a measurement
ROUNDS = {1: 3, 8: 1, 16: 1}  # timed rounds per batch size (a round of batch 16 takes ~20-50 s on one thread)
GROUP = "smollm2-generation"
INFO = DatasetInfo(name="imdb-like", modality="text", classes=("negative", "positive"))
REAL = Split(text_array(["A moving, beautifully acted film.", "Dull, slow and far too long."]), np.array([1, 0]))

_RESULTS: dict[int, dict[str, float]] = {}


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory, tiny: bool) -> Iterator[InstructionLM]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("bench-cache")))  # generations not reused
        tokens = TINY_NEW_TOKENS if tiny else MAX_NEW_TOKENS
        gen = InstructionLM(max_new_tokens=tokens, batch_size=16, device="cpu").fit(REAL, INFO, seed=0)
        warm = InstructionLM(max_new_tokens=2, device="cpu").fit(REAL, INFO, seed=0)
        warm.sample(1, Conditions(labels=np.array([1])), np.random.default_rng(0))  # loads the shared model
        yield gen


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("batch", [1, 8, 16])
def test_generation_throughput(benchmark: Any, generator: InstructionLM, batch: int) -> None:
    labels = np.arange(batch) % 2
    seeds = iter(range(1000))
    before = dict(generator.stats_)
    wall: list[float] = []

    def one_batch() -> Split:
        t0 = time.perf_counter()
        out = generator.sample(batch, Conditions(labels=labels), np.random.default_rng(next(seeds)))
        wall.append(time.perf_counter() - t0)
        return out

    out = benchmark.pedantic(one_batch, rounds=ROUNDS[batch], warmup_rounds=0)
    assert len(out) == batch and all(t.strip() for t in out.x)
    tokens = generator.stats_["tokens"] - before["tokens"]
    seconds = generator.stats_["seconds"] - before["seconds"]
    assert tokens > 0 and seconds > 0
    assert generator.stats_["cached"] == before["cached"], "a round was served from the generation cache"
    info = {"batch": float(batch), "tokens": float(tokens), "seconds": seconds, "tokens_per_s": tokens / seconds,
            "tokens_per_s_wall": tokens / sum(wall), "max_new_tokens": float(generator.max_new_tokens),
            "torch_threads": float(torch.get_num_threads()), "timed": float(benchmark.stats is not None)}
    benchmark.extra_info.update(info)
    _RESULTS[batch] = info
    print(f"\nsmollm2 batch {batch:2d}: {tokens:5.0f} tokens in {seconds:6.1f} s of generate() = "
          f"{info['tokens_per_s']:6.1f} tokens/s (torch threads {torch.get_num_threads()}, "
          f"max {generator.max_new_tokens} new tokens)")


@pytest.mark.benchmark(group="summary")
def test_larger_batches_are_faster(benchmark: Any, check_speed: bool) -> None:
    """Runs after the benchmarks (file order): batching must pay off, batch 16 at over 2x the tokens/s of
    batch 1. Checked only in the benchmark run (--benchmark-only)."""
    if 1 not in _RESULTS or 16 not in _RESULTS:
        pytest.skip("the batch 1 and batch 16 benchmarks did not both run")
    speedup = benchmark.pedantic(lambda: _RESULTS[16]["tokens_per_s"] / _RESULTS[1]["tokens_per_s"], rounds=1)
    benchmark.extra_info["batch16_over_batch1"] = speedup
    if not check_speed:
        return  # the speed-up is checked only in the full-size benchmark run (--benchmark-only)
    assert speedup > 2, _RESULTS
