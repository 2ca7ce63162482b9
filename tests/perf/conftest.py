"""Fixtures shared by the benchmarks: the sizes they run at (full, or tiny), whether bfloat16 autocast
pays on this CPU, and a throw-away cache for the decoded data.

Sizes:
  * full under `--benchmark-only` (`tox -e perf`, the README's commands): the sizes the README's
    "Performance" numbers are measured at, each target timed for its rounds, the speed targets asserted;
  * tiny otherwise: under `--benchmark-disable` (`tox -e test`, CI) pytest-benchmark calls each target
    once, untimed, so every benchmark also runs as an ordinary test and an API change fails CI rather
    than the next measurement (about a minute for the folder, most of it loading SmolLM2 and starting
    the process pool); a plain `pytest` run (no benchmark switch) times the tiny sizes, which measures
    nothing. The summary tests still build their reports, but assert no speed target.
  BENCH_PERF_SIZE=full or tiny overrides the choice. `--benchmark-skip` skips every test here.

bfloat16 autocast pays only where the hardware has native bf16 arithmetic: CUDA devices with bf16
support, and CPUs with AVX-512 BF16 or AMX (on an AVX2 CPU a training step is about 10x slower than in
float32). The benchmarks therefore run in float32 unless `native_bf16()` finds it; BENCH_PERF_BF16=1 or 0
forces either (to measure the other one). pytest's header line says which sizes and precision were used.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import pytest
import torch

from bench.benchmarks.datasets.cifar10 import FILES
from bench.data import locate

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


@lru_cache(maxsize=None)
def native_bf16(device: str = "cpu") -> tuple[bool, str]:
    """(whether bf16 autocast pays on `device`, why). CUDA: torch.cuda.is_bf16_supported(). CPU: torch's
    own AVX-512 BF16 / AMX checks, else the /proc/cpuinfo flags. (torch.backends.cpu.get_cpu_capability()
    says "AVX512" with or without BF16, so it cannot tell.)"""
    if device.startswith("cuda"):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "CUDA with bf16" if ok else "CUDA without bf16"
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        if any(check() for check in checks if check is not None):
            return True, "CPU with AVX-512 BF16 or AMX (torch)"
    except Exception:  # private torch helpers: fall back to the flags
        pass
    found = sorted(set(BF16_CPU_FLAGS) & _cpu_flags())
    if found:
        return True, f"CPU flags {', '.join(found)}"
    return False, f"CPU without native bf16 ({torch.backends.cpu.get_cpu_capability()}, no {'/'.join(BF16_CPU_FLAGS)})"


def use_bf16(device: str = "cpu") -> tuple[bool, str]:
    """native_bf16(device), unless BENCH_PERF_BF16 is 1 or 0."""
    forced = os.environ.get("BENCH_PERF_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"BENCH_PERF_BF16={forced}"
    return native_bf16(device)


def benchmarks_disabled(config: pytest.Config) -> bool:
    """True when pytest-benchmark does not time (`--benchmark-disable`, or disabled by itself, e.g. under
    xdist): each target then runs once."""
    session = getattr(config, "_benchmarksession", None)
    if session is not None:
        return bool(session.disabled)
    return bool(config.getoption("benchmark_disable", default=False)
                and not config.getoption("benchmark_enable", default=False))


def tiny_mode(config: pytest.Config) -> bool:
    """The size switch (module docstring): tiny unless `--benchmark-only`, or BENCH_PERF_SIZE says."""
    forced = os.environ.get("BENCH_PERF_SIZE", "").strip().lower()
    if forced in ("tiny", "full"):
        return forced == "tiny"
    return not config.getoption("benchmark_only", default=False)


def speed_targets_apply(config: pytest.Config) -> bool:
    """Whether the summary tests assert their speed targets: full sizes, timed, `--benchmark-only`."""
    return (bool(config.getoption("benchmark_only", default=False)) and not tiny_mode(config)
            and not benchmarks_disabled(config))


def pytest_report_header(config: pytest.Config) -> str:
    bf16, why = use_bf16("cpu")
    mode = "tiny sizes" if tiny_mode(config) else "full sizes"
    timing = "untimed (--benchmark-disable)" if benchmarks_disabled(config) else "timed"
    return f"perf benchmarks: {mode}, {timing}; CPU autocast {'bfloat16' if bf16 else 'off (float32)'}: {why}"


@pytest.fixture(scope="session")
def tiny(request: pytest.FixtureRequest) -> bool:
    """The benchmarks' size switch (see the module docstring)."""
    return tiny_mode(request.config)


@pytest.fixture(scope="session")
def check_speed(request: pytest.FixtureRequest) -> bool:
    """Whether the summary tests assert their speed targets (`speed_targets_apply`)."""
    return speed_targets_apply(request.config)


@pytest.fixture(scope="session")
def bf16_autocast() -> bool:
    """Whether the CPU benchmarks train and infer under bfloat16 autocast (see the module docstring)."""
    return use_bf16("cpu")[0]


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory, tiny: bool) -> Iterator[Path]:
    """The BENCH_CACHE_DIR of the module's data loads. Timed runs: a throw-away one for the module, so
    that the first load decodes (and is timed); the data folder is resolved first, with the user's
    settings, and pinned through BENCH_DATA_DIR, so only the decoded-array cache moves. Tiny runs: the
    session's throw-away cache (tests/conftest.py), which the other tests' CIFAR-10 loads share, so the
    PNGs are decoded once per session."""
    if tiny:
        yield Path(os.environ["BENCH_CACHE_DIR"])
        return
    data_folder = locate("cifar10", FILES)  # .../cifar10 (may download into the user cache, as `bench` would)
    cache_dir = tmp_path_factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA_DIR", str(data_folder.parent))
        mp.setenv("BENCH_CACHE_DIR", str(cache_dir))
        yield cache_dir
