"""The old import path of StrategyResult, kept for plug-ins written against it (an external strategy may
`from bench.strategy import StrategyResult`). The contract of a strategy, StrategyResult and the keys of
its log live in bench.api; new code imports them from there."""
from __future__ import annotations

from bench.api import StrategyResult as StrategyResult

__all__ = ["StrategyResult"]
