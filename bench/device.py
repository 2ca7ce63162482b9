"""Which torch device a run (or a component with a `device` parameter) uses: `auto` is CUDA when
present, `cuda` without CUDA is a one-line error."""
from __future__ import annotations

import torch

from bench.errors import BenchError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BenchError(f"device {device!r} was asked for but torch sees no CUDA device")
        return torch.device(device)
    if device != "cpu":
        raise BenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)
