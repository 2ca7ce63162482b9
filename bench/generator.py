"""The on-disk cache of fitted generators.

A generator is a dataclass registered in `bench.registry.GENERATORS` with (its contract:
bench.api.Generator; Split, DatasetInfo and Conditions are bench.api's):

    fit(real: Split, info: DatasetInfo, seed: int) -> self
    sample(n: int, conditions: Conditions, rng: numpy.random.Generator) -> Split

and optionally, to start from weights pretrained on the data set's unlabelled training inputs (the CPU
analogue of a pretrained Stable Diffusion; method/generators/diffusion.py has them):

    pretraining() -> dict | None     what the pretraining depends on (None: none, and fit is called as
                                     above); its `examples` (int or None: all) is how many inputs it reads
    pretrain(x, info: DatasetInfo, seed: int) -> state     on inputs x without labels; state picklable
    fit(real, info, seed, pretrained=state) -> self        fine-tunes from it on the real budget

Fitted generators are cached under a content key (generator name, parameters and version, data set,
real-data budget, seed, and a fingerprint of the real examples themselves), so that strategies of one
comparison (random_synthetic, active_synthesis) sample from the very same fitted generator and the
comparison isolates the targeting.

Pretraining runs once per data set and setting, not per cell: `fitted_generator` hands `pretrain` the
inputs of the data set's whole training split (the budget's, the validation split's and the pool's: the
same set whatever the seed, which only cuts it differently; put in a canonical order by content, then
a subset of `examples` fixed by its size alone) and never a label or a test input, with the fixed seed
PRETRAIN_SEED. Its state is cached like a fitted generator (signed, `<name>-pretrained-<key>.pkl`)
under a key of the generator's name and version, `pretraining()`, the data set and a fingerprint of the
inputs: no seed, no budget, so every seed, budget and strategy that samples the setting reads the one
entry; the fitted generator's own key includes that key.

The log (a strategy's strategy_log.generator) says what the generator saw, `labelled_examples` (the real
budget it was fitted on) and `unlabelled_examples` (pretraining inputs; 0 without pretraining), and
with pretraining `pretrain_key`, `pretrain_cached` (false only in the cell that ran it) and its cost
`pretrain_seconds` / `pretrain_cpu_seconds`, whoever ran it. How it is charged (bench.cells): the fit
is charged in full to every cell that samples the generator, the pretraining to none of them. It is a
one-off per data set and setting that every seed, budget and suite version shares, as the training of
a pretrained Stable Diffusion is paid once and charged to no cell; charging it to each cell would count
it dozens of times, and charging the cell that happened to run it would make a cell's cost depend on
the order of the run. So a cell's charged_cpu_seconds leave it out (even in the cell that ran it), and
every cell that samples the generator records it apart, as compute.generator_pretrain_cpu_seconds, for
a reader to amortise over the cells that shared it.

A cache entry is a pickle, and unpickling runs whatever code the bytes name, so an entry is loaded
only if it carries a valid HMAC-SHA256 made with this user's secret key: 32 random bytes created on
first use in `<cache>/.key` (mode 0600, created atomically: concurrent first runs agree on one key,
and a key file that another user owns or can read is refused). The tag covers the entry's cache key
as well as the pickle, so a signed entry cannot be swapped in under another name. The check runs
before a single byte is unpickled. An entry that is unsigned (planted, or written by an older
version), damaged, truncated, signed with another key or no longer loadable is reported in one
CacheWarning naming the file, refitted and overwritten: never a permanent failure. Entries are
written atomically and fsynced.

Why a signature rather than a format that cannot run code on load (torch.load(weights_only=True),
safetensors, JSON plus arrays): fitted generators are not only tensors. pca_gmm holds scikit-learn
PCA and GaussianMixture objects, ctgan and gaussian_copula hold sdv synthesizers (transformers,
copula distributions, pandas metadata), dp_gan and diffusion hold torch modules next to Python
state, and a plug-in generator may hold anything picklable. A weights-only format would need a
hand-written serialiser per generator and per upstream library version; an HMAC secures all of
them, plug-ins included, in one place. The cost: an entry is trusted only by the user who wrote it
(a cache shared between users is refitted, not trusted).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
import stat
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.api import DatasetInfo, Split, TaskView
from bench.data import cache_root, cache_unwritable, fsync_dir, remove_stale, warn_cache, write_atomic
from bench.errors import BenchError
from bench.registry import GENERATORS, param_record

_MAGIC = b"active-synthesis-bench signed pickle v1\n"  # then a 32-byte HMAC-SHA256 tag, then the pickle
_KEY_BYTES = 32  # HMAC-SHA256 key length: the hash's output size, full strength
_untrusted_keys: set[str] = set()  # key files already reported unusable in this process
PRETRAIN_SEED = 0  # pretraining's seed and its subset's: fixed, so it never depends on a cell's seed


def fingerprint(split: Split) -> str:
    """sha256 of a split's inputs and labels (arrays hashed by their bytes, other inputs by repr)."""
    h = hashlib.sha256()
    for part in (split.x, split.y):
        a = np.asarray(part)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def generator_key(name: str, generator: Any, dataset: str, budget: int, seed: int, real: Split,
                  pretrained: str | None = None) -> str:
    record = {
        "generator": name,
        "version": GENERATORS.caps(name).version,  # bump it in the registration when fit/sample change
        # The device is where the fit ran, not what was fitted: it does not enter the key.
        "params": {k: v for k, v in param_record(generator).items() if k != "device"},
        "dataset": dataset,
        "budget": budget,
        "seed": seed,
        "real": fingerprint(real),
    }
    if pretrained is not None:  # the pretrained state's key (absent without pretraining: keys as before)
        record["pretrained"] = pretrained
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def training_inputs(task: TaskView) -> np.ndarray:
    """The inputs of the data set's whole training split, without labels, in a canonical order (bytewise by
    content): the budget's, the validation split's and the pool's, which are the same set for every seed."""
    parts = [np.asarray(split.x) for split in (task.train, task.val, task.pool) if len(split)]
    x = np.concatenate(parts)
    if x.dtype == object or x.ndim < 2:
        raise BenchError(f"pretraining takes array inputs (images), not {x.dtype} {x.shape}")
    rows = np.ascontiguousarray(x.reshape(len(x), -1)).view(np.dtype((np.void, x[0].nbytes))).ravel()
    return x[np.argsort(rows, kind="stable")]


def pretraining_inputs(task: TaskView, examples: int | None) -> np.ndarray:
    """What pretraining reads: `examples` of training_inputs (a subset fixed by its size; None: all)."""
    x = training_inputs(task)
    if examples is not None and examples < len(x):
        x = x[np.sort(np.random.default_rng(PRETRAIN_SEED).choice(len(x), examples, replace=False))]
    return x


def pretrain_key(name: str, settings: dict[str, Any], dataset: str, x: np.ndarray) -> str:
    """The pretrained state's content key: no seed and no budget, so every cell of the setting shares it."""
    h = hashlib.sha256(str((x.dtype, x.shape)).encode())
    h.update(np.ascontiguousarray(x).tobytes())
    record = {"generator": name, "version": GENERATORS.caps(name).version, "pretraining": settings,
              "dataset": dataset, "inputs": h.hexdigest()}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def generator_cache_path(name: str, key: str) -> Path:
    """Where the fitted generator `name` with content key `key` is cached."""
    return cache_root() / "generators" / f"{name}-{key[:32]}.pkl"


def pretrained_cache_path(name: str, key: str) -> Path:
    """Where the pretrained state of generator `name` with content key `key` is cached."""
    return cache_root() / "generators" / f"{name}-pretrained-{key[:32]}.pkl"


def fitted_generator(task: TaskView, name: str, params: dict[str, Any], real: Split | None = None,
                     info: DatasetInfo | None = None) -> tuple[Any, dict[str, Any]]:
    """The generator `name` fitted on the task's real budget (or on `real`, another view of it, such as
    text embeddings, described by `info`): loaded from the cache when a signed entry is present, else
    fitted and stored. Returns it with a log record: the key, whether it came from the cache, and the
    fit's cost (`fit_seconds` wall, `fit_cpu_seconds` of the process, all threads) whether it was fitted
    now or by an earlier cell, so that every strategy sampling it can be charged the same fit; the
    examples it saw; and, for a generator that pretrains, its pretraining (module docstring)."""
    generator = GENERATORS.build(name, params)
    pretraining = generator.pretraining() if callable(getattr(generator, "pretrain", None)) else None
    if pretraining is not None and real is not None:
        raise BenchError(f"generator {name!r} pretrains on the data set's training inputs: it cannot be fitted on "
                         "another view of them")
    real = task.train if real is None else real
    info = task.info if info is None else info
    unlabelled, pre_key = None, None
    if pretraining is not None:
        unlabelled = pretraining_inputs(task, pretraining.get("examples"))
        pre_key = pretrain_key(name, pretraining, task.data.name, unlabelled)
    key = generator_key(name, generator, task.data.name, task.budget, task.seed, real, pretrained=pre_key)
    path = generator_cache_path(name, key)
    seen = {"labelled_examples": len(real), "unlabelled_examples": 0 if unlabelled is None else len(unlabelled)}
    # A generator with a `device` parameter left at "auto" runs where the task runs (--device).
    follow_task = hasattr(generator, "device") and params.get("device", "auto") == "auto"
    secret = signing_key()  # None: the cache cannot be trusted or written here (already reported)
    if secret is not None and path.exists():
        cached = _load_signed(path, key, secret)
        if cached is not None:
            fitted, cost = cached
            if follow_task:
                fitted.device = task.device
            extra = {} if pre_key is None else {"pretrain_key": pre_key, "pretrain_cached": True}
            return fitted, {"name": name, "key": key, "cached": True, **seen, **extra, **cost}
    if follow_task:
        generator.device = task.device
    extra, pre_cost, options = {}, {}, {}
    if pretraining is not None:
        options["pretrained"], pre_cost, pre_cached = _pretrained(task, name, generator, pre_key, unlabelled,
                                                                  secret, info)
        extra = {"pretrain_key": pre_key, "pretrain_cached": pre_cached}
        del unlabelled  # 150 MB on cifar10: not kept through the fit
    start, cpu = time.perf_counter(), time.process_time()
    generator.fit(real, info, task.seed, **options)
    cost = {"fit_seconds": time.perf_counter() - start, "fit_cpu_seconds": time.process_time() - cpu, **pre_cost}
    if secret is not None:
        _store_signed(path, key, secret, generator, cost)
    return generator, {"name": name, "key": key, "cached": False, **seen, **extra, **cost}


def _pretrained(task: TaskView, name: str, generator: Any, key: str, x: np.ndarray, secret: bytes | None,
                info: DatasetInfo) -> tuple[Any, dict[str, float], bool]:
    """The generator's pretrained state on inputs `x`, from the cache or pretrained now (and stored); with
    the pretraining's cost (whoever ran it) and whether it came from the cache."""
    path = pretrained_cache_path(name, key)
    if secret is not None and path.exists():
        cached = _load_signed(path, key, secret)
        if cached is not None:
            return cached[0], cached[1], True
    start, cpu = time.perf_counter(), time.process_time()
    state = generator.pretrain(x, info, PRETRAIN_SEED)
    cost = {"pretrain_seconds": time.perf_counter() - start, "pretrain_cpu_seconds": time.process_time() - cpu}
    if secret is not None:
        _store_signed(path, key, secret, state, cost)
    return state, cost, False


def _store_signed(path: Path, key: str, secret: bytes, generator: Any, cost: dict[str, float]) -> None:
    """Pickle, sign and write `generator` with its fit's cost to `path`; where it cannot be pickled or
    written, say so (the run goes on with the generator in memory)."""
    try:
        payload = pickle.dumps({"generator": generator, "fit": cost}, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a lock, a lambda, a local class
        warn_cache(f"fitted generator {type(generator).__name__} cannot be pickled ({type(exc).__name__}: {exc}): "
                   "it is refitted in every cell; make its fitted state picklable (__getstate__) to cache it")
        return
    try:
        remove_stale(path.parent, f".{path.name}.*.tmp")  # a pickle half-written when a run was killed
        write_atomic(path, _MAGIC + _tag(secret, key, payload) + payload, mode=0o600)
    except OSError as exc:
        cache_unwritable(exc)


def _tag(secret: bytes, key: str, payload: bytes) -> bytes:
    mac = hmac.new(secret, _MAGIC, hashlib.sha256)
    mac.update(key.encode() + b"\0")
    mac.update(payload)
    return mac.digest()


def _load_signed(path: Path, key: str, secret: bytes) -> tuple[Any, dict[str, float]] | None:
    """The generator in the entry at `path` and its fit's cost, if its signature verifies and it
    unpickles; else None, with one warning naming the file."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror or exc})"
    else:
        head = len(_MAGIC) + hashlib.sha256().digest_size
        if len(blob) < head or not blob.startswith(_MAGIC):
            reason = "is not signed (written by an older version, or not by the harness)"
        elif not hmac.compare_digest(blob[len(_MAGIC):head], _tag(secret, key, blob[head:])):
            reason = "has a signature that does not match (damaged, truncated, or not written by this user)"
        else:
            try:
                entry = pickle.loads(blob[head:])  # signed by this user's key: bytes this harness wrote
            except Exception as exc:  # noqa: BLE001  # an outdated class, a missing package: refit
                reason = f"no longer loads ({type(exc).__name__}: {exc})"
            else:
                if isinstance(entry, dict) and entry.keys() == {"generator", "fit"}:
                    return entry["generator"], entry["fit"]
                reason = "holds no fit cost (written by an older version)"
    warn_cache(f"generator cache entry {path} {reason}: ignored; refitting and overwriting it")
    return None


def signing_key() -> bytes | None:
    """This user's secret key for signing cache entries, created on first use; None (with one
    warning) when it can neither be read nor created, or when the key file is not private."""
    path = cache_root() / ".key"
    for _ in range(2):  # read; else create, then read whichever key won a concurrent creation
        try:
            return _read_key(path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            if str(path) not in _untrusted_keys:
                _untrusted_keys.add(str(path))
                warn_cache(f"cache key {path} is unusable ({exc}): fitted generators are neither loaded from "
                           "nor stored in the cache; delete the file to have a new key made")
            return None
        try:
            _create_key(path)
        except OSError as exc:
            cache_unwritable(exc)
            return None
    return None


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise ValueError(f"owned by uid {st.st_uid}, not by this user")
        if os.name == "posix" and st.st_mode & 0o077:
            raise ValueError(f"mode {stat.S_IMODE(st.st_mode):o}: others may read or change it, expected 600")
        secret = os.read(fd, _KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(secret) != _KEY_BYTES:
        raise ValueError(f"{len(secret)} bytes, expected {_KEY_BYTES}")
    return secret


def _create_key(path: Path) -> None:
    """Write a new random key beside `path` and link it into place: the link fails if another
    process made the key first, and then both use that one (a reader never sees a partial key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".key.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won: its key is read back by the caller
        except OSError:  # a file system without hard links: an atomic rename, unless a key appeared
            if not os.path.lexists(path):
                os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
