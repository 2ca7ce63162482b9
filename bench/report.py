"""The static HTML report (`bench report`): index.html and its figures (SVG files in figures/ beside
it), built from the result files. No server and no JavaScript: open index.html in a browser.

One section per suite family (suite, version, preset), reusing the leaderboard's loading and grouping
(`bench.leaderboard.collect`) and its per-group metric tables, and the paired verdicts of `bench.stats`:

- a summary table: per strategy the primary metric (mean ± SD over the seeds with status ok), the
  verdict against real_only (Holm-adjusted paired t; the mean difference in points with its 95% CI),
  up to N_SECONDARY secondary metrics and the mean wall time and CPU (or GPU) hours per cell; the full
  metric table of the leaderboard inside a <details> element;
- figures, each only where the results hold its data: the efficiency frontier (test primary metric
  against the synthetic examples added; against the real training examples where a data set has
  several budgets; validation accuracy against the synthetic total per round of the loop), |U_tau| and
  the mean uncertainty per round of the loop strategies, a forest plot of the paired differences
  against real_only, and the cost: gain over real_only against the extra compute per cell; for image
  suites, a grid of the synthetic thumbnails each strategy kept in its artifacts (bench.artifacts; the
  first seed that has them), where the results have artifacts files.

The output is a pure function of the results: no timestamps, sorted order, and matplotlib's SVG writer
with a fixed hash salt, no date and no creator line, so rebuilding unchanged results rewrites
identical bytes and a committed site does not churn. SVG figures of an earlier build that this build
no longer draws are removed from figures/ (nothing else in the output folder is touched).
"""
from __future__ import annotations

import html
import io
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bench import artifacts, leaderboard
from bench import stats as paired
from bench.config import budget_text
from bench.errors import BenchError
from bench.results import budget_segment, cell_path

FIGURES = "figures"  # sub-folder of the output folder holding the SVG files
INDEX = "index.html"
REFERENCE = "real_only"  # the verdicts, the forest plot and the cost are against this strategy
# Secondary metrics of the summary table, in this order of preference; the first N_SECONDARY that the
# family's results have (other than the primary metric) are shown. The full table has every metric.
SECONDARY = ("accuracy", "balanced_accuracy", "macro_f1", "ece", "nll")
N_SECONDARY = 3
# matplotlib's tab10 colours, assigned to a family's strategies in sorted order.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
VERDICT_COLOURS = {paired.BETTER: "#2ca02c", paired.WORSE: "#d62728"}  # others grey
GREY = "#7f7f7f"
NUM = ' class="num"'  # right-aligned table cell
# SVG output that is identical run after run: ids hashed with a fixed salt, text kept as text (small
# files; the browser's sans-serif font draws it), no date or creator in the metadata.
RC = {"svg.hashsalt": "bench-report", "svg.fonttype": "none", "font.size": 9.0, "axes.titlesize": 9.0,
      "legend.fontsize": 7.5, "figure.dpi": 100.0}
SVG_METADATA = {"Date": None, "Creator": None}

Group = tuple[str, int | str]  # (dataset, budget) within a family
Family = tuple[str, int, str]  # (suite, version, preset)

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right}
td.num{white-space:nowrap}
tr.reference td{background:#f4f4f4}
.better{color:#1a7f1a;font-weight:600}.worse{color:#b00;font-weight:600}
figure{margin:1em 0}figcaption{font-size:.85em;color:#444}
img{max-width:100%;height:auto}
section{border-top:2px solid #ddd;margin-top:2em}
details{margin:.5em 0 1em}summary{cursor:pointer}
"""


def build(results: Path, out: Path) -> list[Path]:
    """Write out/index.html and out/figures/*.svg from the results under `results`; returns the files
    written (index first). BenchError when there is no valid result to report."""
    groups = leaderboard.collect(results)
    if not groups:
        raise BenchError(f"no results under {results}: run `bench run --suite NAME`")
    verdicts = paired.compare(groups)
    families: dict[Family, dict[Group, list[dict[str, Any]]]] = defaultdict(dict)
    for key in sorted(groups, key=paired.group_order):  # numeric budgets first, in order, then forms
        families[key[:3]][key[3:]] = groups[key]
    figures: dict[str, bytes] = {}  # file name -> SVG bytes
    sections = [_section(fam, families[fam], verdicts.get(fam, []), figures, results) for fam in sorted(families)]
    page = _page(sections, sorted(families))
    fig_dir = out / FIGURES
    fig_dir.mkdir(parents=True, exist_ok=True)
    written = [out / INDEX]
    (out / INDEX).write_text(page, encoding="utf-8")
    for name in sorted(figures):
        (fig_dir / name).write_bytes(figures[name])
        written.append(fig_dir / name)
    for stale in sorted(fig_dir.glob("*.svg")):  # figures of an earlier build that this one no longer draws
        if stale.name not in figures:
            stale.unlink()
    return written


def suite_description(name: str, version: int) -> str:
    """The registered suite's `description`, if the registered file is still this version (a newer
    version may describe different runs); "" otherwise or where the suite is not registered here."""
    from bench.config import read_suite_file
    from bench.registry import SUITES

    try:
        if name not in SUITES:
            return ""
        raw = read_suite_file(Path(SUITES.get(name)))
    except BenchError:  # a plug-in that fails to load, an unreadable file: the report goes on without
        return ""
    return str(raw.get("description") or "") if raw.get("version") == version else ""


# ---------------------------------------------------------------------------------------------- data


def _ok(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r["status"] == "ok"]


def _by_strategy(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r["cell"]["strategy"], r["cell"]["seed"])):
        out[r["cell"]["strategy"]].append(r)
    return dict(out)


def _number(x: Any) -> float | None:
    """A finite int or float (not a bool), else None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _metric(r: Mapping[str, Any], name: str) -> float | None:
    return _number((r.get("metrics") or {}).get(name, {}).get("value"))


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample SD (ddof 1; 0 for a single value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _directions(records: Sequence[Mapping[str, Any]]) -> dict[str, bool]:
    """Scalar metrics of the records -> higher_is_better (a metric that is a mapping anywhere is left out)."""
    directions: dict[str, bool] = {}
    mappings: set[str] = set()
    for r in records:
        for name, m in (r.get("metrics") or {}).items():
            directions.setdefault(name, bool(m["higher_is_better"]))
            if isinstance(m["value"], dict):
                mappings.add(name)
    return {n: d for n, d in sorted(directions.items()) if n not in mappings}


def _hours_key(records: Sequence[Mapping[str, Any]]) -> str:
    """gpu_hours where every ok cell of the family records them (a GPU run), else cpu_hours."""
    ok = _ok(records)
    return "gpu_hours" if ok and all(_number(r["compute"].get("gpu_hours")) is not None for r in ok) else "cpu_hours"


def _colours(strategies: Sequence[str]) -> dict[str, str]:
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(strategies))}


def _round_series(records: Sequence[Mapping[str, Any]], y_key: str, x_key: str = "round"
                  ) -> list[tuple[float, float, float, int]]:
    """Per round number of strategy_log.rounds over the seeds: (mean x, mean y, SD of y, seeds), for
    the rounds that record both keys; rounds are in order."""
    per_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        for rd in (r.get("strategy_log") or {}).get("rounds") or []:
            if not isinstance(rd, Mapping):
                continue
            x, y, k = _number(rd.get(x_key)), _number(rd.get(y_key)), _number(rd.get("round"))
            if x is not None and y is not None and k is not None:
                per_round[int(k)].append((x, y))
    out = []
    for k in sorted(per_round):
        xs, ys = zip(*per_round[k])
        y_mean, y_sd = _mean_sd(ys)
        out.append((float(np.mean(xs)), y_mean, y_sd, len(ys)))
    return out


def _is_loop(records: Sequence[Mapping[str, Any]]) -> bool:
    return any((r.get("strategy_log") or {}).get("rounds") for r in records)


# ----------------------------------------------------------------------------------------- figures


def _svg(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata=SVG_METADATA, bbox_inches="tight")
    return buf.getvalue()


def _figure(ncols: int, width_per: float = 4.6, height: float = 3.4) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width_per * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _draw(draw: Callable[[], Any]) -> bytes | None:
    """Run a figure function under the report's rcParams; its SVG bytes, or None if it drew nothing."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = draw()
        return None if fig is None else _svg(fig)


def _band(ax: Any, series: list[tuple[float, float, float, int]], colour: str, label: str, **style: Any) -> None:
    xs = [s[0] for s in series]
    ys = np.array([s[1] for s in series])
    sd = np.array([s[2] for s in series])
    ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=label, **style)
    ax.fill_between(xs, ys - sd, ys + sd, color=colour, alpha=0.15, linewidth=0)


def _synthetic_budget(r: Mapping[str, Any]) -> float | None:
    """A cell's configured synthetic examples per class (0 for a strategy that does not synthesise)."""
    synthetic = (r.get("config") or {}).get("synthetic")
    return 0.0 if synthetic is None else _number(synthetic.get("budget_per_class"))


def _curves(by: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[str]]:
    """Strategy name -> the strategy ids that run it at two or more synthetic budgets (a frontier preset
    lists one id per budget), in order of budget, with the reference (budget 0) first where present."""
    ids: dict[str, dict[float, str]] = defaultdict(dict)
    for s, rs in by.items():
        name, budget = (rs[0].get("config") or {}).get("strategy", {}).get("name"), _synthetic_budget(rs[0])
        if name is not None and budget is not None and s != REFERENCE:
            ids[name][budget] = s
    reference = [REFERENCE] if REFERENCE in by else []
    return {name: reference + [b[k] for k in sorted(b)] for name, b in sorted(ids.items()) if len(b) >= 2}


def frontier_figure(records: Sequence[Mapping[str, Any]], primary: str, colours: Mapping[str, str]) -> Any | None:
    """Test primary metric against synthetic examples added (mean ± SD over seeds in both), and, for
    the loop strategies, validation accuracy against the synthetic total per round (mean ± SD band).
    A strategy run at several synthetic budgets (strategy ids of one name) is drawn as a line through
    its budgets, from the real_only point (no synthetic data), with a ± SD band: the frontier."""
    by = _by_strategy(_ok(records))
    points = {}
    for s, rs in by.items():
        pairs = [(_number((r.get("strategy_log") or {}).get("synthetic_examples")), _metric(r, primary)) for r in rs]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if pairs:
            points[s] = pairs
    curves = {name: [s for s in ids if s in points] for name, ids in _curves(by).items()}
    curves = {name: ids for name, ids in curves.items() if len(ids) >= 2}
    loops = {s: _round_series(rs, "val_accuracy", "synthetic_total") for s, rs in by.items() if _is_loop(rs)}
    loops = {s: v for s, v in loops.items() if v}
    if not points and not loops:
        return None
    fig, axes = _figure(int(bool(points)) + int(bool(loops)))
    if points:
        ax = axes[0]
        on_curve = {s for ids in curves.values() for s in ids if s != REFERENCE}
        for name, ids in curves.items():
            series = []
            for s in ids:
                (mx, _), (my, sy) = _mean_sd([p[0] for p in points[s]]), _mean_sd([p[1] for p in points[s]])
                series.append((mx, my, sy, len(points[s])))
            _band(ax, series, colours[ids[-1]], f"{name} ({len(ids) - (ids[0] == REFERENCE)} synthetic budgets)")
        for s, pairs in points.items():
            if s in on_curve:
                continue
            (mx, sx), (my, sy) = _mean_sd([p[0] for p in pairs]), _mean_sd([p[1] for p in pairs])
            ax.errorbar([mx], [my], xerr=[sx], yerr=[sy], fmt="o", color=colours[s], capsize=3,
                        label=f"{s} (n={len(pairs)})")
        ax.set_xlabel("synthetic examples added")
        ax.set_ylabel(f"test {primary}")
        ax.set_title(f"test {primary} vs synthetic examples (mean ± SD over seeds)")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    if loops:
        ax = axes[-1]
        for s, series in loops.items():
            _band(ax, series, colours[s], s)
        ax.set_xlabel("synthetic examples so far (synthetic_total)")
        ax.set_ylabel("validation accuracy")
        ax.set_title("validation accuracy per round of the loop (mean ± SD)")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    return fig


def budget_figure(by_group: Mapping[Group, Sequence[Mapping[str, Any]]], primary: str,
                  colours: Mapping[str, str]) -> Any | None:
    """Test primary metric against the real training examples (the budgets of one data set), per
    strategy, mean ± SD band over seeds; None below two budgets."""
    if len(by_group) < 2:
        return None
    series: dict[str, list[tuple[float, float, float, int]]] = defaultdict(list)
    for _, records in by_group.items():
        for s, rs in _by_strategy(_ok(records)).items():
            pairs = [(_number((r.get("real_data") or {}).get("train_examples")), _metric(r, primary)) for r in rs]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if pairs:
                my, sy = _mean_sd([p[1] for p in pairs])
                series[s].append((float(np.mean([p[0] for p in pairs])), my, sy, len(pairs)))
    series = {s: sorted(v) for s, v in series.items() if len(v) >= 2}
    if not series:
        return None
    fig, (ax,) = _figure(1, width_per=5.5)
    for s in sorted(series):
        _band(ax, series[s], colours[s], s)
    ax.set_xscale("log")
    # The budgets as plain numbers (100, 200, 400) instead of the log axis' 2 x 10^2 and minor ticks.
    budgets = sorted({p[0] for v in series.values() for p in v})
    ax.set_xticks(budgets, [f"{b:,.0f}" for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("real training examples (budget)")
    ax.set_ylabel(f"test {primary}")
    ax.set_title(f"test {primary} vs real-data budget (mean ± SD over seeds)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def uncertainty_figure(records: Sequence[Mapping[str, Any]], colours: Mapping[str, str]) -> Any | None:
    """|U_tau| and the mean uncertainty score (in U_tau solid, in the pool dashed) per round of the loop
    strategies, mean ± SD band over seeds; None without such rounds."""
    by = {s: rs for s, rs in _by_strategy(_ok(records)).items() if _is_loop(rs)}
    sizes = {s: _round_series(rs, "uncertain") for s, rs in by.items()}
    sizes = {s: v for s, v in sizes.items() if v}
    if not sizes:
        return None
    fig, (a1, a2) = _figure(2)
    for s in sorted(sizes):
        _band(a1, sizes[s], colours[s], s)
        for key, style, label in (("mean_score_uncertain", "-", f"{s}: in U_tau"), ("mean_score_pool", "--", f"{s}: pool")):
            series = _round_series(by[s], key)
            if series:
                _band(a2, series, colours[s], label, linestyle=style)
    a1.set_xlabel("round")
    a1.set_ylabel("|U_tau| (uncertain pool examples)")
    a1.set_title("size of the uncertain set per round (mean ± SD)")
    a2.set_xlabel("round")
    a2.set_ylabel("mean uncertainty score")
    a2.set_title("mean uncertainty per round (mean ± SD)")
    for ax in (a1, a2):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
    return fig


def synthetic_samples(records: Sequence[Mapping[str, Any]], results: Path) -> list[tuple[str, int, dict[str, np.ndarray]]]:
    """(strategy, seed, artifact arrays) of each strategy (in order) whose artifacts hold thumbnails: its
    first seed that has them. An artifacts file that is missing or damaged is left out with a warning."""
    out = []
    for strategy, rs in _by_strategy(_ok(records)).items():
        for r in rs:
            if not artifacts.has_sidecar(r):
                continue
            s, c = r["suite"], r["cell"]
            try:
                path = cell_path(results, s["name"], s["version"], s["preset"], c["dataset"], c["budget"],
                                 c["strategy"], c["seed"])
                arrays = artifacts.read_sidecar(path, dict(r))
            except BenchError as exc:
                print(f"bench: warning: no thumbnails of {strategy} seed {c['seed']}: {exc}", file=sys.stderr)
                continue
            if len(arrays.get("thumbnails", ())):
                out.append((strategy, int(c["seed"]), arrays))
                break
    return out


def thumbnail_figure(samples: Sequence[tuple[str, int, Mapping[str, np.ndarray]]]) -> Any | None:
    """A grid of synthetic thumbnails: one row per strategy, each image titled with its class."""
    if not samples:
        return None
    from matplotlib.figure import Figure

    cols = max(len(a["thumbnails"]) for _, _, a in samples)
    fig = Figure(figsize=(1.4 + 0.6 * cols, 0.2 + 0.75 * len(samples)), layout="constrained")
    axes = fig.subplots(len(samples), cols, squeeze=False)
    for row, (strategy, seed, arrays) in enumerate(samples):
        thumbs, names = arrays["thumbnails"], arrays.get("sample_classes", np.array([], dtype=str))
        for j, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(thumbs):
                ax.set_axis_off()
                continue
            img = thumbs[j]
            grey = img.shape[-1] == 1
            ax.imshow(img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=255,
                      interpolation="nearest")
            if j < len(names):
                ax.set_title(str(names[j])[:10], fontsize=6, pad=1)
        axes[row][0].set_ylabel(f"{strategy}\nseed {seed}", rotation=0, ha="right", va="center", fontsize=7)
    return fig


def _label(c: paired.Comparison, several: bool) -> str:
    return f"{c.strategy} ({c.dataset} {budget_segment(c.budget)})" if several else c.strategy


def forest_figure(comparisons: Sequence[paired.Comparison]) -> Any | None:
    """Paired mean differences against real_only, in points, with their 95% CIs (no whisker below 2
    pairs), coloured by verdict."""
    comps = [c for c in comparisons if c.reference == REFERENCE]
    if not comps:
        return None
    several = len({(c.dataset, c.budget) for c in comps}) > 1
    fig, (ax,) = _figure(1, width_per=6.0, height=0.9 + 0.32 * len(comps))
    for i, c in enumerate(comps):
        y = len(comps) - 1 - i  # first comparison on top
        t = c.test
        colour = VERDICT_COLOURS.get(c.verdict, GREY)
        if t.ci_low is not None:
            ax.plot([t.ci_low / paired.POINT, t.ci_high / paired.POINT], [y, y], color=colour, linewidth=1.5)
        ax.plot([t.mean / paired.POINT], [y], "o", color=colour)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(comps)), [_label(c, several) for c in reversed(comps)])
    arrow = "higher" if comps[0].higher_is_better else "lower"
    ax.set_xlabel(f"Δ {comps[0].metric} vs {REFERENCE} (points, 95% CI; {arrow} is better)")
    ax.set_title("paired differences by seed (green better, red worse, grey no detectable difference)")
    ax.grid(alpha=0.3, axis="x")
    return fig


@dataclass(frozen=True)
class Cost:
    """A strategy's gain over real_only against its extra compute per cell, over the paired seeds."""

    comparison: paired.Comparison
    hours: float  # mean hours (CPU or GPU) per cell of the strategy
    extra: float  # hours per cell beyond real_only's

    @property
    def gain(self) -> float:  # points, signed so that positive is better
        c = self.comparison
        return (1 if c.higher_is_better else -1) * c.test.mean / paired.POINT


def costs(groups: Mapping[Group, Sequence[Mapping[str, Any]]], comparisons: Sequence[paired.Comparison],
          hours_key: str) -> list[Cost]:
    """One Cost per comparison against real_only whose paired cells all record `hours_key`."""
    out = []
    for c in comparisons:
        if c.reference != REFERENCE:
            continue
        cells = {(r["cell"]["strategy"], int(r["cell"]["seed"])): r for r in _ok(groups[(c.dataset, c.budget)])}
        hours = {s: [_number(cells[(s, k)]["compute"].get(hours_key)) for k in c.seeds] for s in (c.strategy, REFERENCE)}
        if any(h is None for hs in hours.values() for h in hs):
            continue
        mine, ref = float(np.mean(hours[c.strategy])), float(np.mean(hours[REFERENCE]))
        out.append(Cost(c, mine, mine - ref))
    return out


def cost_figure(cost_rows: Sequence[Cost], unit: str) -> Any | None:
    """Gain over real_only (points, 95% CI) against the extra hours per cell."""
    if not cost_rows:
        return None
    several = len({(k.comparison.dataset, k.comparison.budget) for k in cost_rows}) > 1
    fig, (ax,) = _figure(1, width_per=6.0, height=3.6)
    colours = _colours([k.comparison.strategy for k in cost_rows])
    sign = 1 if cost_rows[0].comparison.higher_is_better else -1
    for k in cost_rows:
        t = k.comparison.test
        yerr = None
        if t.ci_low is not None:
            lo, hi = sorted((sign * t.ci_low / paired.POINT, sign * t.ci_high / paired.POINT))
            yerr = [[k.gain - lo], [hi - k.gain]]
        ax.errorbar([k.extra], [k.gain], yerr=yerr, fmt="o", capsize=3, color=colours[k.comparison.strategy],
                    label=_label(k.comparison, several))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"extra {unit} per cell over {REFERENCE}")
    ax.set_ylabel(f"gain in {cost_rows[0].comparison.metric} over {REFERENCE} (points, 95% CI)")
    ax.set_title("cost: gain against extra compute")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


# -------------------------------------------------------------------------------------------- HTML


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _td(x: Any, num: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{_e(x)}</td>"


def _delta(c: paired.Comparison) -> str:
    """Δ in points with its 95% CI, as in the leaderboard's verdict table: "+1.23 [-0.40, +2.86]"."""
    t = c.test
    ci = f" [{t.ci_low / paired.POINT:+.2f}, {t.ci_high / paired.POINT:+.2f}]" if t.ci_low is not None else ""
    return f"{t.mean / paired.POINT:+.2f}{ci}"


def _markdown_table(md: str) -> str:
    """The pipe tables of a markdown text (the leaderboard's rendering of one group) as HTML tables."""
    blocks: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return "".join(_html_table(b) for b in blocks if b)


def _html_table(lines: list[str]) -> str:
    rows = [line.strip().strip("|").split(" | ") for line in lines if line.startswith("| ")]
    align = [line for line in lines if line.startswith("|--") or line.startswith("|---")]
    right = [a.endswith(":") for a in align[0].strip("|").split("|")] if align else []
    cells = lambda row, tag: "".join(  # noqa: E731
        f"<{tag}{NUM if i < len(right) and right[i] else ''}>{_e(x.strip())}</{tag}>" for i, x in enumerate(row))
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows[1:])
    return f"<table><thead><tr>{cells(rows[0], 'th')}</tr></thead><tbody>{body}</tbody></table>\n"


def _img(name: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{FIGURES}/{_e(name)}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>\n")


def _section(family: Family, groups: Mapping[Group, Sequence[Mapping[str, Any]]],
             comparisons: Sequence[paired.Comparison], figures: dict[str, bytes], results: Path | None = None) -> str:
    suite, version, preset = family
    records = [r for rs in groups.values() for r in rs]
    primary = records[0]["suite"]["primary_metric"]
    directions = _directions(records)
    secondary = [m for m in SECONDARY if m in directions and m != primary][:N_SECONDARY]
    hours_key = _hours_key(records)
    unit = "GPU hours" if hours_key == "gpu_hours" else "CPU hours"
    colours = _colours({r["cell"]["strategy"] for r in records})
    several = len(groups) > 1
    anchor = f"{suite}-v{version}-{preset}"
    stem = f"{suite}-v{version}-{preset}"
    description = suite_description(suite, version)
    parts = [f'<section id="{_e(anchor)}">\n<h2>{_e(suite)} v{version} · preset {_e(preset)}</h2>\n']
    if description:
        parts.append(f'<p class="description">{_e(description)}</p>\n')
    arrow = "↑" if directions.get(primary, True) else "↓"
    parts.append(f"<p>Primary metric: <b>{_e(primary)}</b> {arrow}. Verdicts against {REFERENCE}: paired by seed, "
                 "Holm-adjusted paired t-test over the suite's comparisons; Δ in points (0.01 of the metric) with "
                 "its 95% confidence interval.</p>\n")
    parts.append(_summary_table(groups, comparisons, primary, directions, secondary, hours_key, several))
    if comparisons:
        parts.append(f"<p>{_e(paired.power_sentence(comparisons))}</p>\n")
    parts.append("<details><summary>All metrics</summary>\n")
    for (dataset, budget), rs in groups.items():
        parts.append(f"<h4>{_e(dataset)} · {_e(budget_text(budget))}</h4>\n")
        parts.append(_markdown_table(leaderboard._table(suite, version, preset, dataset, budget, list(rs))))
    parts.append("</details>\n")

    def add(name: str, draw: Callable[[], Any], alt: str, caption: str) -> None:
        svg = _draw(draw)
        if svg is not None:
            figures[name] = svg
            parts.append(_img(name, alt, caption))

    for (dataset, budget), rs in groups.items():
        where = f"{stem}-{dataset}-{budget_segment(budget)}"
        title = f"{dataset} · {budget_text(budget)}"
        add(f"{where}-frontier.svg", lambda rs=rs: frontier_figure(rs, primary, colours), f"efficiency frontier, {title}",
            f"Efficiency frontier, {title}: test {primary} against the synthetic examples each strategy added; "
            "validation accuracy against the synthetic total per round of the loop strategies.")
        add(f"{where}-uncertainty.svg", lambda rs=rs: uncertainty_figure(rs, colours), f"uncertainty per round, {title}",
            f"Uncertainty per round, {title}: |U_tau| and the mean uncertainty score in U_tau and in the pool.")
        if results is not None:
            add(f"{where}-synthetic.svg", lambda rs=rs: thumbnail_figure(synthetic_samples(rs, results)),
                f"synthetic images, {title}", f"Synthetic images, {title}: a seeded sample of each strategy's synthetic "
                "data, spread over the classes (the first seed whose artifacts hold one), one row per strategy.")
    for dataset in dict.fromkeys(d for d, _ in groups):
        by_budget = {g: rs for g, rs in groups.items() if g[0] == dataset}
        add(f"{stem}-{dataset}-budgets.svg", lambda b=by_budget: budget_figure(b, primary, colours),
            f"test {primary} against the real-data budget, {dataset}",
            f"Test {primary} against the real training examples, {dataset}: one point per budget.")
    add(f"{stem}-forest.svg", lambda: forest_figure(comparisons), f"forest plot against {REFERENCE}",
        f"Paired differences against {REFERENCE} with 95% confidence intervals.")
    cost_rows = costs(groups, comparisons, hours_key)
    add(f"{stem}-cost.svg", lambda: cost_figure(cost_rows, unit), "cost per point",
        f"Cost: gain in {primary} over {REFERENCE} against the extra {unit} per cell.")
    if cost_rows:
        parts.append(_cost_table(cost_rows, unit, several))
    parts.append("</section>\n")
    return "".join(parts)


def _summary_table(groups: Mapping[Group, Sequence[Mapping[str, Any]]], comparisons: Sequence[paired.Comparison],
                   primary: str, directions: Mapping[str, bool], secondary: Sequence[str], hours_key: str,
                   several: bool) -> str:
    arrow = lambda n: "↑" if directions.get(n, True) else "↓"  # noqa: E731
    hours = "GPU h" if hours_key == "gpu_hours" else "CPU h"
    head = (["data"] if several else []) + ["strategy", f"{primary} {arrow(primary)}", "seeds",
                                           f"vs {REFERENCE}", "Δ points [95% CI]", "p (Holm)"]
    head += [f"{m} {arrow(m)}" for m in secondary] + ["wall s", hours]
    numeric = {f"{primary} {arrow(primary)}", "seeds", "Δ points [95% CI]", "p (Holm)", "wall s", hours,
               *(f"{m} {arrow(m)}" for m in secondary)}
    lines = ['<table class="summary"><thead><tr>'
             + "".join(f"<th{NUM if h in numeric else ''}>{_e(h)}</th>" for h in head)
             + "</tr></thead><tbody>\n"]
    verdicts = {(c.dataset, c.budget, c.strategy): c for c in comparisons if c.reference == REFERENCE}
    higher = directions.get(primary, True)
    for (dataset, budget), records in groups.items():
        rows = []
        for s, rs in _by_strategy(records).items():
            ok = _ok(rs)
            vals = [v for v in (_metric(r, primary) for r in ok) if v is not None]
            rows.append((s, ok, vals))
        # Best primary mean first (as in the leaderboard); strategies without a value last.
        rows.sort(key=lambda row: (1, 0.0, row[0]) if not row[2] else
                  (0, -np.mean(row[2]) if higher else np.mean(row[2]), row[0]))
        for s, ok, vals in rows:
            c = verdicts.get((dataset, budget, s))
            cls = ' class="reference"' if s == REFERENCE else ""
            cells = [_td(f"{dataset} {budget_segment(budget)}")] if several else []
            cells += [_td(s), _td(leaderboard._mean_std(vals), num=True), _td(len(vals), num=True)]
            if c is not None:
                cells += [_td(c.verdict, cls="verdict " + c.verdict.replace(" ", "-")), _td(_delta(c), num=True),
                          _td(leaderboard._fmt_p(c.p_holm), num=True)]
            else:
                cells += [_td("reference" if s == REFERENCE else "—", cls="verdict"), _td("—", num=True),
                          _td("—", num=True)]
            for m in secondary:
                cells.append(_td(leaderboard._mean_std([v for v in (_metric(r, m) for r in ok) if v is not None]),
                                 num=True))
            comp = [r["compute"] for r in ok]
            cells += [_td(leaderboard._mean_compute(comp, "wall_seconds"), num=True),
                      _td(leaderboard._mean_compute(comp, hours_key), num=True)]
            lines.append(f'<tr data-strategy="{_e(s)}" data-dataset="{_e(dataset)}" '
                         f'data-budget="{_e(budget_segment(budget))}"{cls}>' + "".join(cells) + "</tr>\n")
    lines.append("</tbody></table>\n")
    return "".join(lines)


def _cost_table(rows: Sequence[Cost], unit: str, several: bool) -> str:
    short = "GPU h" if unit == "GPU hours" else "CPU h"
    head = (["data"] if several else []) + ["strategy", "gain (points)", f"{short} per cell",
                                           f"extra {short} per cell", f"points per extra {short}",
                                           f"extra {short} per point"]
    out = ["<table class=\"cost\"><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>\n"]
    for k in rows:
        c = k.comparison
        per_hour = "—" if k.extra <= 0 else f"{k.gain / k.extra:.3g}"  # no extra cost: a ratio means nothing
        per_point = f"{k.extra / k.gain:.3g}" if k.gain > 0 and k.extra > 0 else ("no gain" if k.gain <= 0 else "—")
        cells = [_td(f"{c.dataset} {budget_segment(c.budget)}")] if several else []
        cells += [_td(c.strategy), _td(f"{k.gain:+.2f}", num=True), _td(f"{k.hours:.3g}", num=True),
                  _td(f"{k.extra:+.3g}", num=True), _td(per_hour, num=True), _td(per_point, num=True)]
        out.append("<tr>" + "".join(cells) + "</tr>\n")
    out.append("</tbody></table>\n")
    out.append(f"<p>Cost per point: extra {unit} per cell over {REFERENCE} divided by the gain in points (mean "
               "over the paired seeds; the gain's sign counts the metric's direction, so positive is better).</p>\n")
    return "".join(out)


def _page(sections: Sequence[str], families: Sequence[Family]) -> str:
    toc = "".join(f'<li><a href="#{_e(f"{s}-v{v}-{p}")}">{_e(s)} v{v} · preset {_e(p)}</a></li>'
                  for s, v, p in families)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>Active synthesis benchmark: report</title>\n"
            f"<style>\n{CSS}</style>\n</head>\n<body>\n<h1>Active synthesis benchmark: report</h1>\n"
            "<p>Generated by <code>bench report</code> from the result files; do not edit by hand. Metric cells: "
            "mean ± standard deviation over the seeds with status ok. Compute: mean per cell (one seed).</p>\n"
            f"<ul>{toc}</ul>\n" + "".join(sections) + "</body>\n</html>\n")
