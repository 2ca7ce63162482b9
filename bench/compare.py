"""`bench compare REF NEW`: do two result folders hold the same numbers, cell by cell?

Cells are paired by (suite, version, preset, dataset, budget, strategy, seed), read from the records
(not from the paths), and are comparable only when both records carry the same config_hash: the same
configuration, down to every component's version. A comparable pair then compares its status and every
metric value (a mapping such as per_class_accuracy key by key; None equals None):

- exactly, when both cells ran on the CPU: the harness seeds everything, so a rerun of the same code on
  the same kind of CPU and library build repeats every bit;
- within a relative tolerance, |a - b| <= tol * max(|a|, |b|), when either ran on CUDA (the device the
  result records, `compute.device`). DEFAULT_CUDA_TOLERANCE = 1e-4: the harness does not switch on
  torch's deterministic algorithms, and float32 sums taken in another order (cuDNN's and cuBLAS's kernel
  choices, atomic adds) differ by about sqrt(n) * 1.2e-7 relative over n terms, i.e. 1e-6 to 1e-5 over
  the 10^2 to 10^4 test examples a metric averages; 1e-4 leaves room for that, and keeps a rate (a value
  in [0, 1]) within one unit of the fourth decimal that LEADERBOARD.md prints. Training that diverges on
  the GPU moves metrics by seed-noise amounts, far beyond it, and is reported as different, as it
  should be: such a rerun repeats the experiment, not its numbers.

`tolerance` (the --tolerance flag) replaces both rules with one relative tolerance for every pair, CPU
pairs included (for a rerun on another CPU, whose kernels may round differently).

For the pairs that differ (or whose config_hash differs), the report names how the two sides' recorded
environments differ (`environment_differences`), grouped over cells, each with its remedy: the torch
thread count (a float sum over another number of threads rounds differently), the CPU's kernel
capability and model, the device, a library's version, the code's commit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.kernels import KERNELS
from bench.results import Result, budget_segment, load_results

DEFAULT_CUDA_TOLERANCE = 1e-4  # relative; see the module docstring
LIST_LIMIT = 10  # cells listed per one-sided group in the text report (--json lists all)

CellKey = tuple[str, int, str, str, str, str, int]  # suite, version, preset, dataset, budget, strategy, seed


@dataclass
class Report:
    """What `compare` found; `exit_code` and `to_json` give the command's answer."""

    ref: str
    new: str
    tolerance: float | None  # None: exact on CPU pairs, DEFAULT_CUDA_TOLERANCE with CUDA
    identical: list[str] = field(default_factory=list)
    within_tolerance: list[dict[str, Any]] = field(default_factory=list)
    different: list[dict[str, Any]] = field(default_factory=list)
    hash_differs: list[dict[str, str]] = field(default_factory=list)
    only_in_ref: list[str] = field(default_factory=list)
    only_in_new: list[str] = field(default_factory=list)
    environment: list[dict[str, Any]] = field(default_factory=list)  # see environment_differences

    @property
    def paired(self) -> int:
        return len(self.identical) + len(self.within_tolerance) + len(self.different)

    @property
    def exit_code(self) -> int:
        """0 when at least one cell was compared and every cell present on both sides matched; a
        cell only on one side does not count (e.g. a rerun of one suite against the whole table)."""
        return 0 if self.paired and not self.different and not self.hash_differs else 1

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "new": self.new,
                "tolerance": {"explicit": self.tolerance,
                              "cpu": 0.0 if self.tolerance is None else self.tolerance,
                              "cuda": DEFAULT_CUDA_TOLERANCE if self.tolerance is None else self.tolerance},
                "counts": {"paired": self.paired, "identical": len(self.identical),
                           "within_tolerance": len(self.within_tolerance), "different": len(self.different),
                           "config_hash_differs": len(self.hash_differs), "only_in_ref": len(self.only_in_ref),
                           "only_in_new": len(self.only_in_new)},
                "identical": self.identical, "within_tolerance": self.within_tolerance,
                "different": self.different, "config_hash_differs": self.hash_differs,
                "only_in_ref": self.only_in_ref, "only_in_new": self.only_in_new,
                "environment_differences": self.environment, "exit_code": self.exit_code}


def cell_key(r: Result) -> CellKey:
    return (r.suite, r.version, r.preset, r.dataset, budget_segment(r.budget), r.strategy, r.seed)


def cell_label(key: CellKey) -> str:
    """The cell as its path below the results folder reads: cifar10/v3/cpu/cifar10/n10/real_only/seed0."""
    suite, version, preset, dataset, budget, strategy, seed = key
    return f"{suite}/v{version}/{preset}/{dataset}/{budget}/{strategy}/seed{seed}"


def collect(root: Path, flag: str) -> dict[CellKey, Result]:
    """Every result under `root` by cell; BenchError for a missing folder, no results, a damaged file
    (iter_results names it) or two files of one cell."""
    root = Path(root)
    if not root.is_dir():
        raise BenchError(f"{flag} {root} {'is not a folder' if root.exists() else 'does not exist'}")
    cells: dict[CellKey, Result] = {}
    for r in load_results(root):
        key = cell_key(r)
        if key in cells:
            raise BenchError(f"{flag} {root} holds two results of cell {cell_label(key)}: {cells[key].path} and {r.path}")
        cells[key] = r
    if not cells:
        raise BenchError(f"no results under {flag} {root} (expected <suite>/v<version>/.../seed<k>.json files)")
    return cells


def _flat(r: Result) -> dict[str, Any]:
    """metric -> value, a mapping value as metric.key -> value (per_class_accuracy.cat)."""
    out: dict[str, Any] = {}
    for name, value in r.metric_values().items():
        if isinstance(value, dict):
            out.update({f"{name}.{k}": v for k, v in value.items()})
            if not value:
                out[name] = {}
        else:
            out[name] = value
    return out


def rel_diff(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|): 0 for equal values, 1 when one side is 0 and the other is not."""
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def _compare_values(a: Any, b: Any, tol: float) -> tuple[bool, float]:
    """(within `tol`, relative difference); a missing value (None) only equals a missing value, and a
    value absent on one side ("missing") matches nothing."""
    if a == b:
        return True, 0.0
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool) and math.isfinite(a) and math.isfinite(b):
        d = rel_diff(float(a), float(b))
        return d <= tol, d
    return False, math.inf


def compare_pair(ref: Result, new: Result, tol: float) -> tuple[bool, list[dict[str, Any]], float]:
    """(exactly equal, the metrics outside `tol` with both values, the largest relative difference)."""
    a, b = _flat(ref), _flat(new)
    if ref.status != new.status:
        a, b = {"status": ref.status, **a}, {"status": new.status, **b}
    exact, worst, outside = True, 0.0, []
    for name in sorted(a.keys() | b.keys()):
        va, vb = a.get(name, "missing"), b.get(name, "missing")
        ok, d = _compare_values(va, vb, tol)
        exact = exact and d == 0.0
        worst = max(worst, d)
        if not ok:
            outside.append({"metric": name, "ref": va, "new": vb, "rel_diff": None if math.isinf(d) else d})
    return exact, outside, worst


# The recorded facts of where a cell ran that can move its numbers, in the order the report lists them.
ENVIRONMENT_FACTS = ("torch_threads", "kernels", "cpu_capability", "cpu", "device", "git_commit", "git_dirty")


def _environment(r: Result) -> dict[str, Any]:
    """fact -> value for the ENVIRONMENT_FACTS `r` records (older results lack hardware.cpu_capability;
    a fact not recorded is left out: nothing can be said about it)."""
    hardware, code = r.get("hardware") or {}, r.get("code") or {}
    facts = {"torch_threads": hardware.get("torch_threads"), "kernels": hardware.get("kernels"),
             "cpu_capability": hardware.get("cpu_capability"),
             "cpu": hardware.get("cpu"), "device": r.compute.get("device"),
             "git_commit": code.get("git_commit"), "git_dirty": code.get("git_dirty")}
    return {k: v for k, v in facts.items() if v is not None}


def _remedy(fact: str, ref: Any, new: Any) -> str:
    """What to do so that NEW runs as REF did, for one differing fact (a package by its name)."""
    if fact == "torch_threads":
        return (f"rerun with --workers N so each worker gets {ref} thread{'s' * (ref != 1)} "
                f"(max(1, cores // N) = {ref}), or with OMP_NUM_THREADS={ref}")
    if fact == "kernels":
        return f"rerun with --kernels {ref}" if ref in KERNELS else f"rerun with {ref} set"
    if fact == "cpu_capability":
        return ("kernels of another vector width sum in another order and train another model: rerun with "
                "--kernels portable (AVX2 kernels on every x86-64 processor)")
    if fact == "cpu":
        return ("another processor model: with --kernels portable on both sides the kernels are the same; cells "
                "that still differ differ by the processor itself, so compare the suites' verdicts (bench stats), "
                "not cells")
    if fact == "device":
        return f"rerun with --device {str(ref).split(':')[0]}"
    if fact in ("git_commit", "active-synthesis-bench"):
        return "run the code REF ran: check out REF's git_commit"
    if fact == "git_dirty":
        return ("rerun from a clean checkout: NEW ran uncommitted changes" if new else
                "REF ran uncommitted changes: no commit reproduces it exactly")
    if fact == "python":
        return f"run under Python {ref}"
    if ref is None:
        return f"REF ran without {fact}: pip uninstall {fact}"
    return f"install the versions REF used: pip install {fact}=={ref}"


def _fact(value: Any) -> str:
    return "not installed" if value is None else str(value)


def environment_differences(pairs: list[tuple[str, Result, Result]]) -> list[dict[str, Any]]:
    """How REF's and NEW's recorded environments differ over the differing (cell, REF, NEW) pairs: one
    entry per (fact, REF value, NEW value) with the cells it holds for and its remedy, facts in
    ENVIRONMENT_FACTS order then packages by name, a fact's larger groups first. A package is compared
    where both sides record packages (one a side lacks was not installed, value None)."""
    groups: dict[tuple[int, str, Any, Any], list[str]] = {}
    for label, r, n in pairs:
        a, b = _environment(r), _environment(n)
        diffs = [(i, fact, a[fact], b[fact]) for i, fact in enumerate(ENVIRONMENT_FACTS)
                 if fact in a and fact in b and a[fact] != b[fact]]
        pa, pb = r.get("packages") or {}, n.get("packages") or {}
        if pa and pb:
            diffs += [(len(ENVIRONMENT_FACTS), name, pa.get(name), pb.get(name))
                      for name in sorted(pa.keys() | pb.keys()) if pa.get(name) != pb.get(name)]
        for diff in diffs:
            groups.setdefault(diff, []).append(label)
    ordered = sorted(groups.items(), key=lambda g: (g[0][0], g[0][1], -len(g[1]), str(g[0][2]), str(g[0][3])))
    return [{"fact": fact, "ref": ref, "new": new, "cells": cells, "remedy": _remedy(fact, ref, new)}
            for (_, fact, ref, new), cells in ordered]


def compare(ref_root: Path, new_root: Path, tolerance: float | None = None) -> Report:
    """Pair the cells of two result folders and compare them (see the module docstring)."""
    if tolerance is not None and not (0 <= tolerance < math.inf):
        raise BenchError(f"--tolerance takes a relative tolerance >= 0, got {tolerance}")
    ref, new = collect(ref_root, "REF"), collect(new_root, "NEW")
    report = Report(str(ref_root), str(new_root), tolerance)
    report.only_in_ref = [cell_label(k) for k in sorted(ref.keys() - new.keys())]
    report.only_in_new = [cell_label(k) for k in sorted(new.keys() - ref.keys())]
    differing: list[tuple[str, Result, Result]] = []  # (cell, REF, NEW): what the environment section explains
    for key in sorted(ref.keys() & new.keys()):
        r, n, label = ref[key], new[key], cell_label(key)
        if r.config_hash != n.config_hash:
            report.hash_differs.append({"cell": label, "ref": r.config_hash, "new": n.config_hash})
            differing.append((label, r, n))
            continue
        devices = f"{r.device_type}/{n.device_type}"
        if tolerance is not None:
            tol = tolerance
        else:
            tol = 0.0 if devices == "cpu/cpu" else DEFAULT_CUDA_TOLERANCE
        exact, outside, worst = compare_pair(r, n, tol)
        if exact:
            report.identical.append(label)
        elif not outside:
            report.within_tolerance.append({"cell": label, "devices": devices, "tolerance": tol,
                                            "max_rel_diff": worst})
        else:
            report.different.append({"cell": label, "devices": devices, "tolerance": tol, "metrics": outside})
            differing.append((label, r, n))
    report.environment = environment_differences(differing)
    return report


def _value(v: Any) -> str:
    return "(missing)" if v == "missing" else "null" if v is None else repr(v)


def format_report(report: Report) -> str:
    """The text answer: a table of counts, then every different cell with its metrics' two values, the
    cells whose hash differs, and the one-sided cells (the first LIST_LIMIT of each)."""
    if report.tolerance is None:
        rule = f"exact when both ran on the CPU, relative {DEFAULT_CUDA_TOLERANCE:g} when either ran on CUDA"
    else:
        rule = f"relative {report.tolerance:g} on every pair (--tolerance)"
    rows = [("paired cells (same cell, same config_hash)", report.paired),
            ("  identical", len(report.identical)),
            ("  within tolerance", len(report.within_tolerance)),
            ("  different", len(report.different)),
            ("same cell, config_hash differs (not comparable)", len(report.hash_differs)),
            ("only in REF", len(report.only_in_ref)),
            ("only in NEW", len(report.only_in_new))]
    width = max(len(name) for name, _ in rows)
    lines = [f"REF {report.ref}  vs  NEW {report.new}", f"tolerance: {rule}"]
    lines += [f"{name:<{width}}  {count:>5}" for name, count in rows]
    if report.within_tolerance:
        worst = max(w["max_rel_diff"] for w in report.within_tolerance)
        lines.append(f"within tolerance: largest relative difference {worst:.3g}")
    for d in report.different:
        tol = "exact" if d["tolerance"] == 0 else f"rel {d['tolerance']:g}"
        lines.append(f"different: {d['cell']} ({d['devices']}, {tol})")
        for m in d["metrics"]:
            rel = "" if m["rel_diff"] is None else f"  (rel diff {m['rel_diff']:.3g})"
            lines.append(f"    {m['metric']}: REF {_value(m['ref'])}  NEW {_value(m['new'])}{rel}")
    for h in report.hash_differs:
        lines.append(f"config_hash differs: {h['cell']} (REF {h['ref'][:12]}, NEW {h['new'][:12]}): "
                     "run with another configuration or code version, not compared")
    for name, cells in (("only in REF", report.only_in_ref), ("only in NEW", report.only_in_new)):
        for label in cells[:LIST_LIMIT]:
            lines.append(f"{name}: {label}")
        if len(cells) > LIST_LIMIT:
            lines.append(f"{name}: ... and {len(cells) - LIST_LIMIT} more (--json lists all)")
    if report.environment:
        lines.append("environment differences of the differing cells (REF vs NEW):")
        for e in report.environment:
            n = len(e["cells"])
            lines.append(f"  {n} differing cell{'s' * (n != 1)} ran with {e['fact']} {_fact(e['new'])} "
                         f"(REF: {_fact(e['ref'])})")
            lines.append(f"      remedy: {e['remedy']}")
    verdict = {0: "every paired cell matches", 1: "some cells differ or could not be compared"}[report.exit_code]
    if not report.paired and not report.hash_differs:
        verdict = "no cell is in both folders"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
