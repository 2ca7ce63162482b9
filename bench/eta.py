"""How long a run will take, estimated before its first cell and kept current as cells finish.

Each pending cell is costed from finished results already on disk (the output folder and the committed
results/), nearest first:
  1. a result of the very cell (the same config hash): its CPU seconds;
  2. the mean over results of the same suite, data set, budget and strategy id (e.g. another version);
  3. the mean over results of the same suite and strategy name (another data set or budget);
  4. the mean over results of other suites with the same data set, budget and strategy name (a new suite
     that reuses a data set), read only when the steps above leave a cell unknown;
else the cell is unknown and counts as the mean of the costed ones (the estimate says how many).
A cell's CPU seconds (user + system, compute.cpu_seconds) stand for its wall seconds: the committed
cells ran on one torch thread each. The run's estimate is the sum over its pending cells divided by the
cells that run at once (the executor's workers). As cells finish, the remaining cells' estimate is
scaled by the ratio of the wall seconds the finished cells took to what was estimated for them (this
machine and load against the ones the results came from), so the figure converges on the real one.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from bench.errors import BenchError


def _finished(roots: Iterable[Path], suite: str | None, other_than: str | None = None) -> list[dict[str, Any]]:
    """The ok results of `suite` (None: of every suite but `other_than`) under each root (all versions and
    presets), read as strict JSON against the schema without the checks that import plug-ins; a file that
    fails is left out (an estimate)."""
    from bench.results import read_result, validate_result

    records = []
    for root in roots:
        folders = [Path(root) / suite] if suite is not None else \
            [f for f in sorted(Path(root).iterdir()) if f.is_dir() and f.name != other_than] if Path(root).is_dir() else []
        for path in (p for folder in folders if folder.is_dir() for p in sorted(folder.rglob("seed*.json"))):
            try:
                record = read_result(path)
                validate_result(record)
            except BenchError:
                continue
            if record.get("status") == "ok":
                records.append(record)
    return records


@dataclass
class RunEstimate:
    """Estimated wall seconds of each pending cell, and what the finished ones took."""

    estimates: list[float | None]  # per pending cell, seconds; None: nothing to cost it from
    parallel: int = 1  # cells that run at once
    done: dict[int, float] = field(default_factory=dict)  # pending cell index -> wall seconds it took

    @classmethod
    def of(cls, suite: Any, cells: Sequence[Any], roots: Iterable[Path], parallel: int = 1) -> "RunEstimate":
        roots = list(roots)
        by_hash: dict[str, float] = {}
        by_id: dict[tuple, list[float]] = defaultdict(list)
        by_name: dict[str, list[float]] = defaultdict(list)
        elsewhere: dict[tuple, list[float]] = defaultdict(list)  # other suites: (data set, budget, name)

        def index(records: list[dict[str, Any]], own: bool) -> None:
            for r in records:
                cpu = r["compute"].get("cpu_seconds")
                if not isinstance(cpu, (int, float)):
                    continue
                c = r["cell"]
                strategy = r["config"].get("strategy")
                name = str(strategy.get("name") if isinstance(strategy, dict) else strategy)
                if own:
                    by_hash[r["config_hash"]] = float(cpu)
                    by_id[(c["dataset"], str(c["budget"]), c["strategy"])].append(float(cpu))
                    by_name[name].append(float(cpu))
                else:
                    elsewhere[(c["dataset"], str(c["budget"]), name)].append(float(cpu))

        def cost(cell: Any) -> float | None:
            if cell.hash in by_hash:
                return by_hash[cell.hash]
            same = (by_id.get((cell.dataset.name, str(cell.budget), cell.strategy.key)) or by_name.get(cell.strategy.name)
                    or elsewhere.get((cell.dataset.name, str(cell.budget), cell.strategy.name)))
            return sum(same) / len(same) if same else None

        index(_finished(roots, suite.name), own=True)
        costs = [cost(c) for c in cells]
        if None in costs:
            index(_finished(roots, None, other_than=suite.name), own=False)
            costs = [cost(c) for c in cells]
        return cls(costs, max(1, int(parallel)))

    def finished(self, index: int, wall_seconds: float) -> None:
        self.done[index] = float(wall_seconds)

    @property
    def _fill(self) -> float:
        known = [e for e in self.estimates if e is not None]
        return sum(known) / len(known) if known else math.nan

    def _estimate(self, i: int) -> float:
        e = self.estimates[i]
        return self._fill if e is None else e

    @property
    def speed(self) -> float:
        """Actual over estimated seconds of the finished cells (1 before any finished)."""
        pairs = [(t, self._estimate(i)) for i, t in self.done.items() if not math.isnan(self._estimate(i))]
        estimated = sum(e for _, e in pairs)
        return sum(t for t, _ in pairs) / estimated if pairs and estimated > 0 else 1.0

    def remaining_seconds(self) -> float | None:
        """Wall seconds left, None when no cell could be costed and none has finished."""
        left = [i for i in range(len(self.estimates)) if i not in self.done]
        if not left:
            return 0.0
        fill = self._fill
        if math.isnan(fill):
            if not self.done:
                return None
            fill = sum(self.done.values()) / len(self.done) / self.speed  # mean taken, unscaled below
        total = sum(fill if self.estimates[i] is None else self.estimates[i] for i in left)
        return total * self.speed / self.parallel

    def describe(self) -> str:
        """One line: the estimate, and how many pending cells had nothing to be costed from."""
        seconds = self.remaining_seconds()
        unknown = sum(e is None for e in self.estimates)
        if seconds is None:
            return (f"estimate: none yet ({len(self.estimates)} cells, none with a finished result to cost it "
                    "from); it follows from the first cells")
        known = f"; {unknown} of {len(self.estimates)} cells costed as the mean of the others" if unknown else ""
        return f"estimate: {format_duration(seconds)} for {len(self.estimates) - len(self.done)} cells{known}"


def format_duration(seconds: float) -> str:
    """An estimate in words: "under a minute", "about 12 min", "about 2.2 h"."""
    minutes = seconds / 60
    if minutes < 1:
        return "under a minute"
    return f"about {minutes:.0f} min" if minutes < 90 else f"about {minutes / 60:.1f} h"
