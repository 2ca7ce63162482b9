"""Sub-seeds come from one helper (bench.seeding) that returns exactly the values the committed results
were computed with: its named streams are numpy's generators of [seed, k] and its integer seeds the
seed * 1000 formulas, and no other module derives a sub-seed by hand."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.seeding import Stream, corruption_rng, member_seed, round_seed, stream_rng

ROOT = Path(__file__).resolve().parents[1]
# The stream numbers the code used before the helper existed: default_rng([task.seed, k]).
STREAMS = {Stream.SYNTHESIS_LOOP: 1, Stream.PRIOR_SAMPLES: 2, Stream.OWN_GENERATOR: 3}


@pytest.mark.parametrize("seed", [0, 1, 7, 12345, 2**32 - 1])
@pytest.mark.parametrize("stream", list(Stream))
def test_a_stream_is_numpys_generator_of_the_seed_and_its_number(seed, stream):
    k = STREAMS[stream]
    expected = np.random.default_rng([seed, k])
    got = stream_rng(seed, stream)
    assert got.integers(2**63, size=8).tolist() == expected.integers(2**63, size=8).tolist()
    assert got.random(4).tolist() == expected.random(4).tolist()


def test_the_streams_first_draws_are_pinned():
    """The values themselves, so that neither the helper nor numpy's seeding can drift unnoticed."""
    assert stream_rng(0, Stream.SYNTHESIS_LOOP).integers(2**32, size=3).tolist() == [2242647589, 3821399010, 4264680396]
    assert stream_rng(0, Stream.PRIOR_SAMPLES).integers(2**32, size=3).tolist() == [4206763307, 347136604, 1232261001]
    assert stream_rng(0, Stream.OWN_GENERATOR).integers(2**32, size=3).tolist() == [2163987359, 3843878652, 4100047885]
    assert stream_rng(12345, Stream.SYNTHESIS_LOOP).integers(2**32, size=2).tolist() == [3174726910, 2051918101]


def test_the_streams_keep_their_numbers():
    assert {s: int(s) for s in Stream} == STREAMS


@pytest.mark.parametrize("seed", [0, 3, 2**32 - 1])
def test_integer_sub_seeds_are_the_formulas_of_the_committed_results(seed):
    for r in range(5):
        assert round_seed(seed, r) == seed * 1000 + r  # a round's MC dropout and its BO study
        assert round_seed(round_seed(seed, r), 7) == (seed * 1000 + r) * 1000 + 7  # a BO trial
        for m in range(5):
            assert member_seed(seed, r, m) == seed * 1000 + 100 * r + m  # a round's model (ensemble member)
    assert (round_seed(3, 2), member_seed(3, 2, 4)) == (3002, 3204)


def test_a_corrupted_sets_generator_is_pinned():
    """The committed shift metrics were drawn with these; a change of formula would change them."""
    assert corruption_rng(0, 1, 2).integers(2**32, size=3).tolist() == [2384177762, 3786887862, 1259353270]
    assert corruption_rng(0, 0, 1).integers(2**63) != corruption_rng(0, 0, 2).integers(2**63)


def test_no_module_derives_a_sub_seed_by_hand():
    by_hand = re.compile(r"default_rng\(\[|\*\s*1000\b|\b1000\s*\*")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for folder in ("bench", "baselines", "method", "metrics", "benchmarks")
             for path in sorted((ROOT / folder).rglob("*.py")) if path != ROOT / "bench" / "seeding.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if by_hand.search(line) and not line.lstrip().startswith("#")]
    assert found == []
