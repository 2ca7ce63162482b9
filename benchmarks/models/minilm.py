"""Task models for text: small networks on the frozen MiniLM sentence encoder (minilm_encoder.py).

The encoder runs once per text, in `to_tensor` (cached on disk per text), and the networks train on
its 384-d embeddings: on 2 CPU cores encoding is the expensive part, and a frozen encoder lets MC
dropout (head only), deep ensembles and every strategy reuse the embeddings. Both networks split into
a deterministic `features` part and a `head` that holds all the dropout, so MC dropout runs the head
alone T times (method.uncertainty.head_only_dropout).

- `minilm_head` (classification: imdb, pubmedqa): embedding -> Linear + ReLU -> dropout -> Linear.
- `minilm_choice` (multiple choice: medqa): each item is parsed into its question q and options o_k
  (bench.text.parse_choice_item); every pair is scored by the same network from [q, o_k, q * o_k]
  (Linear + ReLU, then dropout and a linear score), and the K scores are the logits, so the
  predicted class is the best-scoring option ("score each (question, option) pair, take the best").

`lora: true` (the GPU presets) fine-tunes the encoder itself with LoRA adapters (peft) on its
attention projections instead of training on frozen embeddings: to_tensor then keeps token ids,
and the whole encoder runs in every forward pass, which is why the CPU presets leave it off.
Embedding-space examples (SMOTE's, DP-GAN's) cannot be fine-tuned through the encoder: a LoRA model
refuses them in one line.

Both models define the task model's optional `embed(x)` hook: their own float inputs of a split as
numpy (N, D), or None with `lora: true` (the model takes tokens). Embedding-space strategies
(bench.synthesis.embedding_view) and text-space metrics (minilm_encoder.task_embeddings) work there.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from bench.api import DatasetInfo, Split
from bench.errors import BenchError
from bench.registry import MODELS
from bench.text import parse_choice_item

from .minilm_encoder import EMBEDDING_DIM, embed, encoder_path


class EmbeddingNet(nn.Module):
    """features: Linear + ReLU on the embedding (deterministic); head: dropout + Linear."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float,
                 encoder: nn.Module | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [] if encoder is None else [encoder]
        layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class PairFeatures(nn.Module):
    """(n, (1 + K) * D) flattened [question; options] embeddings -> (n, K * hidden) pair features."""

    def __init__(self, options: int, hidden: int, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.options = options
        self.encoder = encoder
        self.pair = nn.Sequential(nn.Linear(3 * EMBEDDING_DIM, hidden), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            x = self.encoder(x)
        e = x.reshape(len(x), 1 + self.options, EMBEDDING_DIM)
        q, o = e[:, :1].expand(-1, self.options, -1), e[:, 1:]
        return self.pair(torch.cat([q, o, q * o], dim=2)).flatten(1)


class OptionScores(nn.Module):
    """(m, K * hidden) -> (m, K): dropout and one linear score per option, shared by all options."""

    def __init__(self, options: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.options = options
        self.score = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.score(h.reshape(len(h), self.options, -1)).squeeze(-1)


class ChoiceNet(nn.Module):
    def __init__(self, options: int, hidden: int, dropout: float, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.features = PairFeatures(options, hidden, encoder)
        self.head = OptionScores(options, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LoraEncoder(nn.Module):
    """MiniLM with LoRA adapters (peft) on the query and value projections, mean pooled and normalised
    as sentence-transformers does: (n, 2, L) [token ids; attention mask] -> (n, 384); for items of several
    texts, (n, T, 2, L) -> (n, T * 384)."""

    def __init__(self, rank: int, alpha: int) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel

        base = AutoModel.from_pretrained(encoder_path(), local_files_only=True)
        self.model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=alpha, target_modules=["query", "value"],
                                                     lora_dropout=0.0))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lead = tokens.shape[:-2]
        flat = tokens.reshape(-1, 2, tokens.shape[-1]).long()
        ids, mask = flat[:, 0], flat[:, 1]
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        pooled = nn.functional.normalize(pooled, dim=1)
        return pooled.reshape(*lead, -1).flatten(len(lead) - 1) if len(lead) > 1 else pooled


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_path(), local_files_only=True)


def _tokens(texts: list[str], max_tokens: int) -> torch.Tensor:
    """(n, 2, max_tokens) int32 [token ids; attention mask], padded to max_tokens (tokenizer loaded once)."""
    enc = _tokenizer()(texts, padding="max_length", truncation=True, max_length=max_tokens, return_tensors="pt")
    return torch.stack([enc["input_ids"], enc["attention_mask"]], dim=1).to(torch.int32)


def _strings(x: Any, what: str) -> list[str]:
    items = list(np.asarray(x, dtype=object).reshape(-1))
    if not all(isinstance(t, str) for t in items):
        raise BenchError(f"{what} with lora: true fine-tunes the encoder and needs texts; embedding-space "
                         "examples (smote, dp_gan) need the frozen encoder (lora: false)")
    return items


class _EmbeddingHook:
    """The task-model contract's optional `embed(x)` hook (bench.api.TaskModel) for both text models:
    to_tensor's float embeddings as (N, D) numpy, or None with lora (the model takes tokens, not
    embeddings)."""

    def embed(self, x: Any) -> np.ndarray | None:
        if self.lora:
            return None
        t = self.to_tensor(x)
        return t.numpy().reshape(len(t), -1)


@MODELS.register("minilm_head", modalities=("text",))
@dataclass
class MiniLMHead(_EmbeddingHook):
    """A classifier on MiniLM sentence embeddings (frozen, or LoRA-fine-tuned with `lora`)."""

    hidden: Annotated[int, Field(ge=1, le=2**16)] = 256  # units of the hidden layer
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5  # before the output layer (MC dropout needs it)
    max_tokens: Annotated[int, Field(ge=1, le=512)] = 128  # word pieces per text given to the encoder (MiniLM reads 512 at most)
    lora: bool = False  # fine-tune the encoder with LoRA adapters (GPU presets)
    lora_rank: Annotated[int, Field(ge=1)] = 8
    lora_alpha: Annotated[int, Field(ge=1)] = 16

    def build(self, train: Split, info: DatasetInfo) -> nn.Module:
        encoder = LoraEncoder(self.lora_rank, self.lora_alpha) if self.lora else None
        return EmbeddingNet(EMBEDDING_DIM, self.hidden, info.num_classes, self.dropout, encoder)

    def to_tensor(self, x: Any) -> torch.Tensor:
        if self.lora:
            return _tokens(_strings(x, "minilm_head"), self.max_tokens)
        return torch.from_numpy(embed(x, self.max_tokens))

    def prepare_batch(self, xb: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        return xb


@MODELS.register("minilm_choice", modalities=("text",))
@dataclass
class MiniLMChoice(_EmbeddingHook):
    """Multiple choice on MiniLM embeddings: each (question, option) pair scored, the best option taken.
    The data set's classes are the option letters; every item must have that many options."""

    hidden: Annotated[int, Field(ge=1, le=2**16)] = 256
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5
    max_tokens: Annotated[int, Field(ge=1, le=512)] = 256  # for the question (a clinical vignette: about 160 word pieces on average)
    option_tokens: Annotated[int, Field(ge=1, le=512)] = 64
    lora: bool = False
    lora_rank: Annotated[int, Field(ge=1)] = 8
    lora_alpha: Annotated[int, Field(ge=1)] = 16

    def build(self, train: Split, info: DatasetInfo) -> nn.Module:
        self.options_ = info.num_classes
        encoder = LoraEncoder(self.lora_rank, self.lora_alpha) if self.lora else None
        return ChoiceNet(info.num_classes, self.hidden, self.dropout, encoder)

    def _parts(self, x: Any) -> tuple[list[int], list[str], list[list[str]]]:
        items = list(np.asarray(x, dtype=object).reshape(-1))
        where, questions, options = [], [], []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                continue
            parsed = parse_choice_item(item)
            if parsed is None:
                raise BenchError(f"minilm_choice: input {i} is not a multiple-choice item (a question, then lines "
                                 f"'(A) ...', '(B) ...'): {item[:60]!r}")
            where.append(i)
            questions.append(parsed[0])
            options.append(parsed[1])
        counts = {len(o) for o in options}
        if len(counts) > 1:
            raise BenchError(f"minilm_choice: items have different numbers of options ({sorted(counts)})")
        return where, questions, options

    @staticmethod
    def _options_of_embedding(items: np.ndarray) -> int:
        """K of embedding-space items, from the width (1 + K) * 384 of the first (0 for no items)."""
        if len(items) == 0:
            return 0
        width = np.asarray(items[0], dtype=np.float32).size
        if width % EMBEDDING_DIM or width // EMBEDDING_DIM < 3:
            raise BenchError(f"minilm_choice: input 0 is neither an item nor a [question; options] embedding "
                             f"((1 + K) x {EMBEDDING_DIM} numbers, K >= 2); it has {width}")
        return width // EMBEDDING_DIM - 1

    def to_tensor(self, x: Any) -> torch.Tensor:
        """(N, (1 + K) * 384) float32 [question; options] embeddings (frozen), or (N, 1 + K, 2, L) tokens.
        K comes from the items' options, else from the built network, else from an embedding's width."""
        where, questions, options = self._parts(x)
        items = np.asarray(x, dtype=object).reshape(-1)
        n = len(items)
        k = len(options[0]) if options else getattr(self, "options_", None)
        if k is None:  # embedding-space items only (SMOTE's, DP-GAN's) on an instance that built no network
            k = self._options_of_embedding(items)
        if self.lora:
            _strings(x, "minilm_choice")
            length = max(self.max_tokens, self.option_tokens)
            q = _tokens(questions, length)
            o = _tokens([t for opts in options for t in opts], length).reshape(n, k, 2, length)
            return torch.cat([q.unsqueeze(1), o], dim=1)
        out = np.zeros((n, (1 + k) * EMBEDDING_DIM), dtype=np.float32)
        if where:
            q = embed(questions, self.max_tokens)
            o = embed([t for opts in options for t in opts], self.option_tokens).reshape(len(where), k * EMBEDDING_DIM)
            out[where] = np.concatenate([q, o], axis=1)
        for i, item in enumerate(items):  # embedding-space items: already (1 + K) * 384 numbers
            if not isinstance(item, str):
                vec = np.asarray(item, dtype=np.float32).reshape(-1)
                if vec.shape != (out.shape[1],):
                    raise BenchError(f"minilm_choice: input {i} is neither an item nor a {out.shape[1]}-d embedding")
                out[i] = vec
        return torch.from_numpy(out)

    def prepare_batch(self, xb: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        return xb
