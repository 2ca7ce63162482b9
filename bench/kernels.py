"""CPU kernel pins: the same numbers from one cell on every x86-64 processor (`bench run --kernels`).

Standard library only: `bench run` calls `pin_kernels` before anything imports torch.
"""
from __future__ import annotations

import os

from bench.errors import BenchError

# Torch's own kernels (ATen), MKL's BLAS and oneDNN each pick the widest vector instructions the processor
# has (AVX-512 on many Xeons, AVX2 on others), and kernels of another width sum in another order, so one
# cell trains another model on another machine. `bench run --kernels portable` (the default) pins all
# three to AVX2, which every x86-64 processor of the last decade has: ATen's dispatch level, MKL's
# conditional numerical reproducibility (STRICT: bitwise, at a fixed thread count) and oneDNN's
# instruction cap. Each library reads its variable when it loads, so they are set before torch imports;
# spawned workers inherit them and Ray workers get them through the job's runtime environment. On an AVX2
# processor the pins change no number (measured: adult cells identical with and without them).
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
KERNELS = ("portable", "native")


def _has_avx2() -> bool:
    """Whether this is an x86-64 processor with AVX2 (Linux: /proc/cpuinfo's flags; elsewhere: no pin)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "avx2" in line.split() for line in f)
    except OSError:
        return False


def pin_kernels(mode: str) -> str:
    """Set this process's (and its workers') kernel variables for `mode` before torch loads, and return the
    mode in effect: `portable` pins PORTABLE_KERNELS (a variable the user set is kept) where the processor
    has AVX2, else nothing can be pinned and the kernels stay `native`; `native` leaves the libraries to
    choose. Called after torch loaded (a test, a notebook), the pins reach spawned workers only."""
    if mode not in KERNELS:
        raise BenchError(f"--kernels takes {' or '.join(KERNELS)}, got {mode!r}")
    if mode == "native" or not _has_avx2():
        return "native"
    for name, value in PORTABLE_KERNELS.items():
        os.environ.setdefault(name, value)
    return mode


def kernels_in_effect() -> str:
    """What the kernel variables of this process say: `portable` (all three as PORTABLE_KERNELS), `native`
    (none set), or the variables as set (NAME=value, space-separated); recorded with every result."""
    values = {name: os.environ.get(name) for name in PORTABLE_KERNELS}
    if values == PORTABLE_KERNELS:
        return "portable"
    if not any(values.values()):
        return "native"
    return " ".join(f"{name}={value}" for name, value in values.items() if value)
