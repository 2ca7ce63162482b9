"""Provenance written into every result: code version, package versions and hardware."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import psutil
import torch

from bench.data import REPO_ROOT
from bench.kernels import kernels_in_effect

PACKAGES = ("active-synthesis-bench", "torch", "torchvision", "numpy", "scipy", "torchmetrics", "pydantic",
            "pyarrow", "pillow", "scikit-learn", "imbalanced-learn", "diffusers", "transformers", "peft", "sdv",
            "opacus", "clean-fid", "torchattacks", "fairlearn", "bert-score", "llama-cpp-python", "opencv-python",
            "imagecorruptions")


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    # Results are written under results/, which is tracked: ignore it when deciding "dirty".
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", ":(exclude)LEADERBOARD.md")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


@functools.lru_cache(maxsize=None)
def known_commit(commit: str) -> bool | None:
    """Whether `commit` is a commit of this repository's history (None: no git here, or a shallow clone
    that cannot tell)."""
    if _git("rev-parse", "--is-shallow-repository") != "false":
        return None
    return _git("cat-file", "-e", f"{commit}^{{commit}}") is not None


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # The vector instructions torch's CPU kernels use here (DEFAULT, AVX2, AVX512, ...): kernels for
        # another one sum in another order, so `bench compare` names a difference of it.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # `bench run --kernels`: portable (ATen, MKL and oneDNN pinned to AVX2, bench.kernels.PORTABLE_KERNELS)
        # or native (each library picks this processor's widest instructions)
        "kernels": kernels_in_effect(),
        "memory_bytes": psutil.virtual_memory().total,
        "gpus": gpus,
    }
