"""Sub-seeds of a cell's seed, derived in one place. Every random draw of a strategy comes from the cell's
seed (`task.seed`) through one of these, so two strategies never share a stream by accident and a
result depends on its seed alone.

Named numpy streams, `stream_rng(seed, Stream.X)` = `numpy.random.default_rng([seed, X])`:
  Stream.SYNTHESIS_LOOP = 1   the active-synthesis loop and its controls, one stream per round and part:
                              `stream_rng(seed, SYNTHESIS_LOOP, r, part)` with `LoopPart` SEEDS (which pool
                              examples seed round r), LABELS (the labels drawn for them), SAMPLES (the
                              generator's samples) and SHUFFLE (a negative control's label permutation).
                              Separate parts are common random numbers: the method and its controls draw
                              the same uniforms for labels and samples whatever their seeds were
  Stream.PRIOR_SAMPLES = 2    synthesis from the class prior: the labels, the seed examples drawn from the
                              pool, the generator's samples
  Stream.OWN_GENERATOR = 3    a strategy that fits its own generator (DP-GAN): sampling it

The shift metrics' corrupted test images (metrics/shift.py), under the metric's own seed (not the cell's:
every cell scores the same sets): `corruption_rng(seed, c, severity)` = `default_rng([seed, c, severity])`,
one generator per corruption index c and severity.

Integer seeds of a step under a seed (torch's and optuna's seeds, whole-number seeds passed on):
  round_seed(seed, r) = seed * 1000 + r
      round r of the loop: its MC-dropout passes and its Bayesian-optimisation study (seeded with
      round_seed(task.seed, r)); inside that study, trial t samples with round_seed(that seed, t)
  member_seed(seed, r, m) = seed * 1000 + 100 * r + m
      member m of round r's model(s) (m = 0 for a single model; ensembles count members from 0),
      except round 0's first model: loop_seed(seed, 0, 0) = seed, the seed real_only trains with, so the
      loop's f_0 is the real_only model of that seed (common random numbers: a loop that returns round 0
      differs from real_only by exactly 0)

Changing a formula changes results: bump the version of every strategy that uses it. The loop's per-round
streams and loop_seed came with active_synthesis version 3 (version 2 drew one SYNTHESIS_LOOP stream for
the whole loop and trained f_0 with member_seed(seed, 0, 0)). The integer seeds are
distinct for rounds below 10 and members below 100, except that member_seed(seed, 0, m) equals
round_seed(seed, m) (the round-0 ensemble's members and the later rounds' dropout masks share seeds;
kept as it was). The task's own splits are drawn with the seed itself (bench.task).
"""
from __future__ import annotations

import enum

import numpy as np


class Stream(enum.IntEnum):
    """The named numpy streams under a cell's seed (module docstring)."""

    SYNTHESIS_LOOP = 1
    PRIOR_SAMPLES = 2
    OWN_GENERATOR = 3


class LoopPart(enum.IntEnum):
    """The parts of one round of the synthesis loop, each drawn from its own stream (module docstring)."""

    SEEDS = 1
    LABELS = 2
    SAMPLES = 3
    SHUFFLE = 4


def stream_rng(seed: int, stream: Stream, *sub: int) -> np.random.Generator:
    """numpy's generator for `stream` under `seed`: `default_rng([seed, stream, *sub])` (`sub`: e.g. a
    round and a LoopPart)."""
    return np.random.default_rng([int(seed), int(stream), *(int(s) for s in sub)])


def corruption_rng(seed: int, corruption: int, severity: int) -> np.random.Generator:
    """numpy's generator of one corrupted test set (module docstring): `default_rng([seed, corruption, severity])`."""
    return np.random.default_rng([int(seed), int(corruption), int(severity)])


def round_seed(seed: int, r: int) -> int:
    """The integer seed of step `r` (a round of the loop, a trial of its search) under `seed`."""
    return seed * 1000 + r


def member_seed(seed: int, r: int, m: int) -> int:
    """The integer seed of member `m` of round `r`'s model(s) under `seed`."""
    return seed * 1000 + 100 * r + m


def loop_seed(seed: int, r: int, m: int) -> int:
    """The torch seed of member `m` of the loop's round `r`: `seed` itself for round 0's first model (the
    real_only model of the cell's seed), else member_seed."""
    return int(seed) if r == 0 and m == 0 else member_seed(seed, r, m)
