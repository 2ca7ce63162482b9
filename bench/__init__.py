"""Core of the active-synthesis benchmark harness: registries, suites, runner, results, leaderboard, CLI.

This package knows no data set, model, strategy or metric by name: those live in `benchmarks`,
`baselines`, `method` and `metrics` (or in external packages) and register themselves into the
registries defined in `bench.registry` when their module is imported through an entry point.
"""
from __future__ import annotations

__version__ = "0.1.0"
