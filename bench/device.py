"""Which torch device a run (or a component with a `device` parameter) uses: `auto` is CUDA when
present, `cuda` without CUDA is a one-line error."""
from __future__ import annotations

import glob
from typing import TYPE_CHECKING

from bench.errors import BenchError

if TYPE_CHECKING:
    import torch

# Device nodes of a GPU that torch's CUDA API can drive (NVIDIA's driver; ROCm's kernel driver)
GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd")


def check_cuda_quickly(device: str) -> None:
    """Refuse `cuda` at once (without importing torch, a second or more) on a machine with no GPU device
    node at all; where one exists, resolve_device decides."""
    if (device == "cuda" or device.startswith("cuda:")) and not any(glob.glob(p) for p in GPU_DEVICE_NODES):
        raise BenchError(f"device {device!r} was asked for but this machine has no GPU device (no "
                         f"{' or '.join(GPU_DEVICE_NODES)})")


def resolve_device(device: str) -> "torch.device":
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BenchError(f"device {device!r} was asked for but torch sees no CUDA device")
        return torch.device(device)
    if device != "cpu":
        raise BenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)
