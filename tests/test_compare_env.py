"""`bench compare` names how the recorded environments of differing cells differ, with the remedy.

Two folders of three small records (the shape of tests/test_readback.py's), NEW's edited."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.config import config_hash
from bench.results import cell_path, read_result, write_result

PACKAGES = {"python": "3.11.7", "torch": "2.14.1", "numpy": "2.4.6", "sdv": "2.0.0"}
HARDWARE = {"cpu": "AMD EPYC", "torch_threads": 1, "cpu_count": 2}


def record(strategy: str, acc: float) -> dict[str, Any]:
    config = {"seed": 0, "strategy": {"name": strategy}}
    return {
        "schema_version": 1,
        "suite": {"name": "s", "version": 1, "preset": "cpu", "primary_metric": "accuracy"},
        "cell": {"dataset": "d", "budget": 10, "strategy": strategy, "seed": 0},
        "config": config, "config_hash": config_hash(config), "status": "ok", "error": None,
        "metrics": {"accuracy": {"value": acc, "higher_is_better": True}},
        "strategy_log": {},
        "compute": {"wall_seconds": 1.0, "cpu_seconds": 1.0, "cpu_hours": 1 / 3600, "peak_rss_bytes": 1,
                    "peak_rss_scope": "cell", "device": "cpu", "gpu_peak_memory_bytes": None, "gpu_hours": None},
        "code": {"git_commit": "a" * 40, "git_dirty": False, "package_version": "0.1.0"},
        "packages": dict(PACKAGES),
        "hardware": dict(HARDWARE),  # as older results: no cpu_capability
        "created_at": "2026-01-01T00:00:00+00:00",
    }


STRATEGIES = ("real_only", "smote", "mixup")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """REF and NEW with the same three cells; NEW's paths by strategy."""
    ref, new, paths = tmp_path / "ref", tmp_path / "new", {}
    for strategy in STRATEGIES:
        for root in (ref, new):
            path = cell_path(root, "s", 1, "cpu", "d", 10, strategy, 0)
            write_result(path, record(strategy, 0.5), root=root)
        paths[strategy] = path
    return ref, new, paths


def edit(path: Path, change) -> None:
    r = read_result(path)
    change(r)
    write_result(path, r)


def compare(capsys, ref: Path, new: Path) -> tuple[int, str, dict]:
    code = main(["compare", str(ref), str(new)])
    out = capsys.readouterr().out
    assert main(["compare", str(ref), str(new), "--json"]) == code
    return code, out, json.loads(capsys.readouterr().out)


def differ(r: dict) -> None:
    r["metrics"]["accuracy"]["value"] = 0.51


def test_threads_of_differing_cells_are_named_with_the_remedy(folders, capsys):
    ref, new, paths = folders
    for strategy in ("real_only", "smote"):  # two differing cells ran with 2 threads
        edit(paths[strategy], lambda r: (differ(r), r["hardware"].update(torch_threads=2)))
    edit(paths["mixup"], lambda r: r["hardware"].update(torch_threads=2))  # matches: not a differing cell
    code, out, report = compare(capsys, ref, new)
    assert code == 1
    assert "environment differences of the differing cells (REF vs NEW):" in out
    assert "  2 differing cells ran with torch_threads 2 (REF: 1)" in out
    assert ("      remedy: rerun with --workers N so each worker gets 1 thread (max(1, cores // N) = 1), "
            "or with OMP_NUM_THREADS=1") in out
    assert out.count("differing cell") == 2  # the header and the one grouped line
    [entry] = report["environment_differences"]
    assert entry["fact"] == "torch_threads" and (entry["ref"], entry["new"]) == (1, 2)
    assert entry["cells"] == ["s/v1/cpu/d/n10/real_only/seed0", "s/v1/cpu/d/n10/smote/seed0"]
    assert "OMP_NUM_THREADS=1" in entry["remedy"]


def test_identical_environments_print_no_section(folders, capsys):
    ref, new, paths = folders
    edit(paths["smote"], differ)
    code, out, report = compare(capsys, ref, new)
    assert code == 1 and "different: " in out
    assert "environment differences" not in out and report["environment_differences"] == []


def test_an_environment_difference_of_matching_cells_is_not_reported(folders, capsys):
    ref, new, paths = folders
    edit(paths["smote"], lambda r: r["packages"].update(torch="2.5.0"))
    code, out, report = compare(capsys, ref, new)
    assert code == 0 and "environment differences" not in out and report["environment_differences"] == []


def test_package_versions_cpu_kind_and_device_are_named(folders, capsys):
    ref, new, paths = folders
    for root in (ref, new):  # results that record the CPU capability
        for strategy in STRATEGIES:
            edit(root / paths[strategy].relative_to(new), lambda r: r["hardware"].update(cpu_capability="AVX512"))

    def elsewhere(r: dict) -> None:
        differ(r)
        r["packages"].update(torch="2.5.0", numpy="1.26.4")
        del r["packages"]["sdv"]
        r["hardware"].update(cpu_capability="AVX2", cpu="Intel Xeon")
        r["compute"]["device"] = "cuda:0"

    edit(paths["smote"], elsewhere)
    code, out, report = compare(capsys, ref, new)
    assert code == 1
    lines = out.splitlines()
    start = lines.index("environment differences of the differing cells (REF vs NEW):")
    assert lines[start + 1:start + 13] == [
        "  1 differing cell ran with cpu_capability AVX2 (REF: AVX512)",
        "      remedy: kernels of another vector width sum in another order and train another model: rerun with "
        "--kernels portable (AVX2 kernels on every x86-64 processor)",
        "  1 differing cell ran with cpu Intel Xeon (REF: AMD EPYC)",
        "      remedy: another processor model: with --kernels portable on both sides the kernels are the same; "
        "cells that still differ differ by the processor itself, so compare the suites' verdicts (bench stats), "
        "not cells",
        "  1 differing cell ran with device cuda:0 (REF: cpu)",
        "      remedy: rerun with --device cpu",
        "  1 differing cell ran with numpy 1.26.4 (REF: 2.4.6)",
        "      remedy: install the versions REF used: pip install numpy==2.4.6",
        "  1 differing cell ran with sdv not installed (REF: 2.0.0)",
        "      remedy: install the versions REF used: pip install sdv==2.0.0",
        "  1 differing cell ran with torch 2.5.0 (REF: 2.14.1)",
        "      remedy: install the versions REF used: pip install torch==2.14.1",
    ]
    assert [e["fact"] for e in report["environment_differences"]] == ["cpu_capability", "cpu", "device", "numpy",
                                                                       "sdv", "torch"]


def test_a_cell_whose_config_hash_differs_is_explained_too(folders, capsys):
    ref, new, paths = folders

    def another_code(r: dict) -> None:
        r["config"]["versions"] = {"strategy": 2}
        r["config_hash"] = config_hash(r["config"])
        r["code"]["git_commit"] = "b" * 40

    edit(paths["real_only"], another_code)
    code, out, _ = compare(capsys, ref, new)
    assert code == 1 and "config_hash differs: " in out
    assert f"  1 differing cell ran with git_commit {'b' * 40} (REF: {'a' * 40})" in out
    assert "remedy: run the code REF ran: check out REF's git_commit" in out


def test_the_hardware_record_names_the_cpu_capability():
    from bench.environment import hardware

    assert hardware()["cpu_capability"] in ("DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256")
    assert hardware()["kernels"] in ("portable", "native") or "=" in hardware()["kernels"]


def test_a_kernels_difference_names_the_flag(folders, capsys):
    ref, new, paths = folders
    for root in (ref, new):
        for strategy in STRATEGIES:
            edit(root / paths[strategy].relative_to(new), lambda r: r["hardware"].update(kernels="portable"))

    def native(r: dict) -> None:
        differ(r)
        r["hardware"].update(kernels="native")

    edit(paths["smote"], native)
    code, out, report = compare(capsys, ref, new)
    assert code == 1
    assert "  1 differing cell ran with kernels native (REF: portable)\n      remedy: rerun with --kernels portable" in out
    assert [e["fact"] for e in report["environment_differences"]] == ["kernels"]


def test_portable_kernels_pin_the_three_libraries_and_keep_a_users_setting(monkeypatch):
    from bench import kernels

    for name in kernels.PORTABLE_KERNELS:
        monkeypatch.delenv(name, raising=False)
    assert kernels.kernels_in_effect() == "native"
    assert kernels.pin_kernels("native") == "native" and kernels.kernels_in_effect() == "native"
    monkeypatch.setattr(kernels, "_has_avx2", lambda: True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # the user's own cap stays
    assert kernels.pin_kernels("portable") == "portable"
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and os.environ["MKL_CBWR"] == "AVX2,STRICT"
    assert kernels.kernels_in_effect() == "ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT ONEDNN_MAX_CPU_ISA=AVX512_CORE"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert kernels.kernels_in_effect() == "portable"
    for name in kernels.PORTABLE_KERNELS:
        monkeypatch.delenv(name)
    monkeypatch.setattr(kernels, "_has_avx2", lambda: False)  # nothing to pin to: the kernels stay native
    assert kernels.pin_kernels("portable") == "native" and kernels.kernels_in_effect() == "native"


def test_a_worker_runs_with_the_pinned_kernels(monkeypatch):
    """A spawned process (as a pool worker is) loads torch with the driver's pins: ATen reports AVX2."""
    import subprocess
    import sys

    from bench import kernels

    if not kernels._has_avx2():
        pytest.skip("not an x86-64 processor with AVX2: nothing to pin")
    def capability(env: dict[str, str]) -> str:
        code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    env = {**os.environ, **kernels.PORTABLE_KERNELS}
    assert capability(env) == "AVX2"
    assert capability({**env, "ATEN_CPU_CAPABILITY": "default"}) == "DEFAULT"  # the variable decides: not a no-op
