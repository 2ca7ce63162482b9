"""Compute accounting for one cell: wall seconds, CPU seconds of the process (all threads),
peak resident memory of the cell, device, and on CUDA the peak GPU memory and GPU-hours.

Peak RSS per cell: on Linux the kernel's high-water mark (VmHWM) is reset through
/proc/self/clear_refs at the start of the cell, so the peak belongs to the cell alone
(`peak_rss_scope: "cell"`). Where that reset is not possible the process-lifetime peak is
reported and marked `peak_rss_scope: "process"`.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import torch


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets the peak RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


class ComputeMeter:
    """Use as a context manager around a cell; `record()` works while running too (partial timings)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._proc = psutil.Process()

    def __enter__(self) -> "ComputeMeter":
        self.scope = "cell" if _reset_peak_rss() else "process"
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t = self._proc.cpu_times()
        self._cpu0 = t.user + t.system
        self._t0 = time.perf_counter()
        self._end: dict[str, Any] | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._end = self.record()

    def record(self) -> dict[str, Any]:
        if self._end is not None:
            return self._end
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self._t0
        t = self._proc.cpu_times()
        out: dict[str, Any] = {
            "wall_seconds": wall,
            "cpu_seconds": t.user + t.system - self._cpu0,
            "cpu_hours": (t.user + t.system - self._cpu0) / 3600,
            "peak_rss_bytes": _peak_rss_bytes(),
            "peak_rss_scope": self.scope,
            "device": str(self.device),
            "gpu_peak_memory_bytes": None,
            "gpu_hours": None,
        }
        if self.device.type == "cuda":
            out["gpu_peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(self.device))
            out["gpu_hours"] = wall / 3600  # one GPU held for the cell's wall time
        return out
