"""Scripts that reproduce outside numbers on a suite's cells (`python -m bench.benchmarks.references.NAME`)."""
