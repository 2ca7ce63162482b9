"""llama.cpp generation for the text generator `smollm2` (method/generators/text_lm.py): the GGUF model run
by llama.cpp (the `llama-cpp-python` binding) on the CPU, batched, with the generator's own sampling rule.

llama.cpp computes with the GGUF file's quantised weights as they are (4-bit blocks times 8-bit activations,
AVX2 dot products), where transformers first dequantises them to float32 (a ~53 s load) and multiplies in
float32: the same model, other numerics. On one CPU thread it generates 1.5-3.6x the tokens per CPU second
of transformers (batch 16 down to 1, class prompts) but reads long prompts slower (~190 tokens/s: Q4_1 has
neither a repacked nor a llamafile GEMM kernel on x86), so rewrites of long seeds run at about 0.8x
(tests/perf/test_perf_text_lm.py measures both; text_lm's docstring has the numbers).

What stays exactly as on the transformers path (text_lm's module docstring):
  - the prompt: the chat template from the GGUF metadata (`tokenizer.chat_template`, the one transformers
    reads from the same file), rendered with jinja2 as transformers renders it (sandboxed, trim_blocks,
    lstrip_blocks, the special tokens as variables), tokenised with the special tokens parsed and no BOS
    added (transformers' `add_special_tokens=False`): the same token ids (tests/test_text_lm_llama.py);
  - the sampling rule: the very RowTemperaturePenalty and SeededTopPSampler objects, called on each step's
    logits of the whole batch (torch tensors over numpy views). Why not llama-cpp-python's samplers or its
    `logits_processor` hook: its samplers draw from llama.cpp's own RNG (one seed per context, no per-row
    temperature or penalty), and `Llama.generate` runs one sequence at a time, so a batch would cost one
    pass over the weights per row. Here all rows advance together in one llama_decode per step (one
    sequence id per row, each row its own KV stream), and the draw is the transformers path's draw: the
    nucleus of each row from the numpy-seeded torch.Generator, the penalty on the generated tokens only;
    rows that have ended keep being drawn for (their draws are discarded, their token is the pad token),
    as in transformers' generate(), so that the generator's stream advances as it does there;
  - the stop rule and counts: a row ends at the end-of-turn token (the GGUF's EOS, as transformers reads it)
    or at the batch's token budget; the caller decodes, cleans and counts exactly as before.

The model is loaded once per process and thread count (`load_llama`, lru_cache; about 0.1 s for the 98 MB
file); a generator never holds it, so nothing of it is pickled. llama.cpp's own logging is silenced
(verbose=False: errors only). `llama_cpp` is imported inside the functions: importing this module costs
nothing where the binding is missing.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import importlib.util
import weakref
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError

INSTALL = ("CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF' "
           "pip install 'llama-cpp-python>=0.3.36'")  # builds llama.cpp from source (~7 min on 2 cores)
CTX_STEP = 256  # KV cells per sequence are rounded up to this: a context is reused by batches that fit it
LOAD_CTX = 64  # tokens of the loader's own context (unused: generation runs in BatchContext's)


def available() -> bool:
    """Whether the llama.cpp binding is installed (found, not imported)."""
    return importlib.util.find_spec("llama_cpp") is not None


def require() -> None:
    if not available():
        raise BenchError(f"generator smollm2: backend llama_cpp needs llama-cpp-python: {INSTALL}")


@functools.lru_cache(maxsize=2)
def load_llama(path: str, n_threads: int) -> "LlamaLM":
    """The GGUF model at `path` in llama.cpp, computing on `n_threads` threads; once per process and key."""
    require()
    from llama_cpp import Llama

    try:
        llm = Llama(model_path=path, n_ctx=LOAD_CTX, n_batch=LOAD_CTX, n_threads=n_threads,
                    n_threads_batch=n_threads, n_gpu_layers=0, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise BenchError(f"llama.cpp cannot load {path}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
                         ) from exc
    lm = LlamaLM(llm, n_threads)
    _LOADED.add(lm)
    return lm


_LOADED: weakref.WeakSet[LlamaLM] = weakref.WeakSet()  # closed at exit; an lru_cache eviction frees one


@atexit.register
def _close_loaded() -> None:
    """Free the loaded models at exit while the binding's module is whole (its __del__ at interpreter
    teardown finds the binding's functions gone and prints a traceback)."""
    for lm in list(_LOADED):
        lm.close()


class LlamaLM:
    """A loaded GGUF model: chat prompts to token ids, batched generation, token ids to text."""

    def __init__(self, llm: Any, n_threads: int) -> None:
        import llama_cpp

        self.llm = llm
        self.n_threads = n_threads
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab = llm.n_vocab()
        self.eos = llm.token_eos()  # the end-of-turn token: the GGUF's EOS, as transformers reads it
        self.pad = int(llm.metadata.get("tokenizer.ggml.padding_token_id", self.eos))
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BenchError(f"the language model {llm.model_path} has no chat template: use an instruction-tuned model")
        self._template = _compile(template)
        # the special tokens that transformers passes to the template (bos_token, eos_token, ...), from the
        # GGUF metadata that its tokenizer is built from
        keys = {"bos_token": "bos", "eos_token": "eos", "unk_token": "unknown", "pad_token": "padding"}
        self._specials = {name: self.token_text(int(llm.metadata.get(f"tokenizer.ggml.{key}_token_id", -1)))
                          for name, key in keys.items()}
        self._ctx: BatchContext | None = None

    def token_text(self, token: int) -> str | None:
        import llama_cpp

        if token < 0:
            return None
        return llama_cpp.llama_vocab_get_text(self.vocab, token).decode("utf-8", errors="replace")

    def chat_text(self, user: str) -> str:
        """One user turn in the model's chat template, the assistant's turn opened (as transformers'
        apply_chat_template(..., add_generation_prompt=True) renders it)."""
        return self._template.render(messages=[{"role": "user", "content": user}], add_generation_prompt=True,
                                     **{k: v for k, v in self._specials.items() if v is not None})

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens parsed, no BOS added (transformers' add_special_tokens=False)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, tokens: list[int]) -> str:
        """The text of `tokens` without control tokens (transformers' skip_special_tokens=True)."""
        return self.llm.detokenize(tokens).decode("utf-8", errors="replace")

    def generate(self, prompts: list[list[int]], processors: list[Any], budget: int) -> list[list[int]]:
        """New token ids per prompt, each ending at its first end-of-turn token (kept) or after `budget`
        tokens. `processors`: transformers-style callables (input_ids, scores) -> scores applied in order to
        each step's logits of all rows (input_ids: the tokens generated so far, B x steps); the next token
        of a row is the argmax of the result (text_lm's sampler makes that the drawn token)."""
        n = len(prompts)
        if n == 0:
            return []
        ctx = self._context(n, max(len(p) for p in prompts) + budget)
        logits = self._prefill(ctx, prompts)
        positions = [len(p) for p in prompts]
        out: list[list[int]] = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        ids = torch.empty((n, 0), dtype=torch.long)
        for step in range(budget):
            scores = torch.from_numpy(logits)
            for proc in processors:
                scores = proc(ids, scores)
            picked = scores.argmax(-1)
            picked[torch.from_numpy(done)] = self.pad  # ended rows: padded (as in generate()), their draw unused
            ids = torch.cat([ids, picked[:, None]], dim=1)
            active = np.flatnonzero(~done)
            for i in active:
                token = int(picked[i])
                out[i].append(token)
                if token == self.eos:
                    done[i] = True
            active = np.flatnonzero(~done)
            if not len(active) or step == budget - 1:
                break
            logits[active] = ctx.decode([(int(i), out[i][-1], positions[i]) for i in active], last_only=False)
            for i in active:
                positions[i] += 1
        return out

    def _prefill(self, ctx: "BatchContext", prompts: list[list[int]]) -> np.ndarray:
        """Each row's prompt in its KV stream, and the logits of its last token (rows x vocab).

        A quantised matrix product costs as much per prompt token as per generated one on this path, so
        prompt tokens are computed once where rows share them: the prefix common to all rows (the system
        turn and the instruction's first words) on row 0, its cells copied to the other rows; a prompt
        equal to an earlier row's (class prompts) is copied whole with its logits. Each token's keys and
        values depend on the tokens before it only: a copy holds what the row would have computed."""
        n = len(prompts)
        ctx.clear()
        logits = np.empty((n, self.n_vocab), dtype=np.float32)
        shared = min(_common_prefix(prompts), min(len(p) for p in prompts) - 1)  # >= 1 own token per row
        first: dict[tuple[int, ...], int] = {}  # a prompt -> the first row with it
        owners = [i for i, p in enumerate(prompts) if first.setdefault(tuple(p), i) == i]
        if shared > 0:
            ctx.decode([(0, t, pos) for pos, t in enumerate(prompts[0][:shared])], last_only=True)
            for i in owners[1:]:
                ctx.copy(0, i)  # applied by the next llama_decode, before it writes row 0's own tokens
        for i in owners:
            own = prompts[i][shared:]
            logits[i] = ctx.decode([(i, t, shared + k) for k, t in enumerate(own)], last_only=True)[0]
        for i, p in enumerate(prompts):
            j = first[tuple(p)]
            if j != i:
                ctx.copy(j, i)
                logits[i] = logits[j]
        return logits

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        self.llm.close()

    def _context(self, rows: int, cells: int) -> "BatchContext":
        """A context of `rows` sequences with at least `cells` KV cells each (the last one if it fits)."""
        ctx = self._ctx
        if ctx is None or ctx.n_seq < rows or ctx.n_cells < cells:
            if ctx is not None:
                ctx.close()
            cells = -(-max(cells, ctx.n_cells if ctx else 0) // CTX_STEP) * CTX_STEP
            ctx = self._ctx = BatchContext(self.llm.model, max(rows, ctx.n_seq if ctx else 0), cells, self.n_threads)
        return ctx


class BatchContext:
    """A llama.cpp context of `n_seq` sequences, each with its own `n_cells` KV cells (kv_unified off: a
    row's attention reads its own cells only), and one llama_batch to feed it."""

    def __init__(self, model: Any, n_seq: int, n_cells: int, n_threads: int) -> None:
        import llama_cpp

        self._api = llama_cpp
        limit = int(llama_cpp.llama_max_parallel_sequences())
        if n_seq > limit:
            raise BenchError(f"generator smollm2: batch_size {n_seq} is above llama.cpp's {limit} parallel sequences")
        params = llama_cpp.llama_context_default_params()
        params.n_seq_max = n_seq
        params.n_ctx = n_seq * n_cells
        params.n_batch = max(n_cells, n_seq)  # a whole prompt, or one token of every row, per llama_decode
        params.n_ubatch = min(512, params.n_batch)
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED  # ~10% faster on this CPU than without
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(model, params)
        if self.ctx is None:
            raise BenchError(f"llama.cpp could not create a context of {n_seq} x {n_cells} tokens")
        self.n_seq, self.n_cells, self.capacity = n_seq, n_cells, params.n_batch
        self.batch = llama_cpp.llama_batch_init(self.capacity, 0, 1)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model)))

    def clear(self) -> None:
        self._api.llama_memory_clear(self._api.llama_get_memory(self.ctx), True)

    def copy(self, src: int, dst: int) -> None:
        """Sequence `src`'s cells into sequence `dst`'s stream (whole: llama.cpp copies across streams only
        whole), done at the next llama_decode."""
        self._api.llama_memory_seq_cp(self._api.llama_get_memory(self.ctx), src, dst, -1, -1)

    def decode(self, entries: list[tuple[int, int, int]], last_only: bool) -> np.ndarray:
        """Feed (sequence, token, position) entries in one llama_decode; the logits (float32, a copy) of
        every entry, or of the last one only."""
        b = self.batch
        if len(entries) > self.capacity:
            raise BenchError(f"llama.cpp batch of {len(entries)} tokens above its capacity {self.capacity}")
        for j, (seq, token, pos) in enumerate(entries):
            b.token[j], b.pos[j], b.n_seq_id[j], b.seq_id[j][0] = token, pos, 1, seq
            b.logits[j] = not last_only or j == len(entries) - 1
        b.n_tokens = len(entries)
        rc = self._api.llama_decode(self.ctx, b)
        if rc != 0:
            raise BenchError(f"llama.cpp: llama_decode failed ({rc}) on {len(entries)} tokens")
        rows = 1 if last_only else len(entries)
        ptr = self._api.llama_get_logits(self.ctx)
        flat = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(rows * self.n_vocab,))
        return flat.reshape(rows, self.n_vocab).copy()

    def close(self) -> None:
        if self.ctx is not None:
            self._api.llama_batch_free(self.batch)
            self._api.llama_free(self.ctx)
            self.ctx = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the binding may already be gone
            pass


def _common_prefix(rows: list[list[int]]) -> int:
    """The length of the longest prefix common to all `rows`."""
    first = rows[0]
    k = min(len(r) for r in rows)
    for r in rows[1:]:
        k = next((j for j in range(k) if r[j] != first[j]), k)
    return k


def _compile(template: str) -> Any:
    """A chat template compiled as transformers compiles it (utils/chat_template_utils.py: a sandboxed
    jinja2 environment with trim_blocks and lstrip_blocks, loop controls, raise_exception)."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise BenchError(f"the chat template failed: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


__all__ = ["INSTALL", "BatchContext", "LlamaLM", "available", "load_llama", "require"]
