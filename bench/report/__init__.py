"""The static HTML report (`bench report`): index.html and its figures (SVG files in figures/ beside
it), built from the result files. No server and no JavaScript: open index.html in a browser.

First the table that answers "does the method beat the baselines?" (bench.report.overview): per suite
family, data set, budget and method strategy, the method's verdict against each reference, and the power
check of the positive control. Then one section per suite family (suite, version, preset), reusing the leaderboard's loading and grouping
(`bench.leaderboard.collect`) and its per-group metric tables, and the paired verdicts of `bench.stats`
(bench.report.page writes the HTML, bench.report.figures draws the figures):

- the power check of the positive control and any negative-control alarm (bench.stats.control_sentences);
- a summary table: per strategy the primary metric (mean ± SD over the seeds with status ok), the
  verdict against the family's primary reference (better / worse by the Holm-adjusted paired t,
  equivalent by TOST within the suite's margin, inconclusive, identical models, too few pairs; the mean
  difference in points with its 95% CI; a loop that returned its round-0 model in every seed flagged as
  the real-data model), up to N_SECONDARY secondary metrics and the mean CPU hours per cell (charged CPU
  seconds, not wall time; GPU hours on a GPU run); the full metric table of the leaderboard inside a
  <details> element;
- figures, each only where the results hold its data: the efficiency frontier (test primary metric
  against the synthetic examples added; against the real training examples where a data set has
  several budgets; validation accuracy against the synthetic total per round of the loop), |U_tau| and
  the mean uncertainty per round of the loop strategies, per parameter that ids of one registered strategy
  sweep alone (figures.sweeps, read from the recorded parameters) the primary metric against its value with
  its 95% CI and the references as lines, a forest plot of the paired differences
  against the reference (coloured by verdict: green and red follow the Holm-adjusted paired t-test, blue
  the TOST within the shaded margin), and the cost: gain over the reference against the extra compute per cell; for
  image suites, a grid of the synthetic thumbnails each strategy kept in its artifacts (bench.artifacts;
  the first seed that has them), where the results have artifacts files.

Every figure colours a strategy alike (figures.colours, built once for the whole site) and keeps its
legend outside the axes; every table scrolls sideways where it is wider than the page.

The output is a pure function of the results: no timestamps, sorted order, and matplotlib's SVG writer
with a fixed hash salt, no date and no creator line, so rebuilding unchanged results rewrites
identical bytes and a committed site does not churn. SVG figures of an earlier build that this build
no longer draws are removed from figures/ (nothing else in the output folder is touched).
"""
from __future__ import annotations

import re
from pathlib import Path

from bench import leaderboard
from bench import stats as paired
from bench.data import write_atomic
from bench.errors import BenchError
from bench.report import figures
from bench.report.overview import overview
from bench.report.page import FIGURES, page, section
from bench.results import by_family

__all__ = ["FIGURES", "INDEX", "build"]

INDEX = "index.html"
FIGURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.svg")  # a file name in figures/, never a path


def build(results: Path, out: Path) -> list[Path]:
    """Write out/index.html and out/figures/*.svg from the results under `results`; returns the files
    written (index first). BenchError when there is no valid result to report."""
    groups = leaderboard.collect(results)
    if not groups:
        raise BenchError(f"no results under {results}: run `bench run --suite NAME`")
    verdicts = paired.compare(groups)
    # numeric budgets first, in order, then forms
    families = by_family({key: groups[key] for key in sorted(groups, key=paired.group_order)})
    svgs: dict[str, bytes] = {}  # file name -> SVG bytes
    # One colour per strategy id across the whole site (every figure of every section).
    colours = figures.colours({r.strategy for rs in groups.values() for r in rs})
    sections = [section(fam, families[fam], verdicts.get(fam, []), svgs, results, colours) for fam in sorted(families)]
    for name in svgs:  # built from the records' slugs (validated by the reader); checked again here
        if not FIGURE_NAME.fullmatch(name) or ".." in name:
            raise BenchError(f"figure name {name!r} is not a safe file name: nothing written")
    fig_dir = out / FIGURES
    fig_dir.mkdir(parents=True, exist_ok=True)
    if fig_dir.is_symlink():
        raise BenchError(f"{fig_dir} is a symbolic link: the report writes only into real folders")
    written = [out / INDEX]
    # Each file atomically (bench.data.write_atomic): a failed write leaves the previous file whole.
    write_atomic(out / INDEX, page(sections, sorted(families), overview(families, verdicts)).encode("utf-8"))
    for name in sorted(svgs):
        write_atomic(fig_dir / name, svgs[name])
        written.append(fig_dir / name)
    for stale in sorted(fig_dir.glob("*.svg")):  # figures of an earlier build that this one no longer draws
        if stale.name not in svgs and not stale.is_symlink() and stale.is_file():
            stale.unlink()
    return written
