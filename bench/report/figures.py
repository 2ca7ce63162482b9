"""The report's figures, drawn with matplotlib into SVG bytes, and the per-family numbers they draw:
the efficiency frontier, the primary metric against the real-data budget, the uncertainty per round of
the loop strategies, a grid of synthetic thumbnails, the forest plot of the paired differences against
the primary reference, the cost (gain over the reference against the extra compute per cell) and the
one-parameter sweeps (strategy ids of one registered strategy that differ from a base in one parameter).

Every figure function returns a matplotlib Figure, or None where the results hold none of its data;
`svg` draws one under the report's rcParams (RC), whose fixed hash salt and empty metadata make the
bytes identical build after build.
"""
from __future__ import annotations

import io
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from bench import artifacts
from bench import stats as paired
from bench.errors import BenchError
from bench.results import Group, Result, budget_segment, by_strategy, finite_number, metric_range

# One colour per strategy id across the whole site (`colours`): matplotlib's tab20, its ten strong colours
# (tab10) first and their ten light partners after, so that a site of up to ten strategies gets tab10; then
# tab20b and tab20c (up to 60 strategies without a repeat).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf",
           "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5")
EXTRA_PALETTES = ("tab20b", "tab20c")  # matplotlib colormaps appended past PALETTE
# Forest-plot colour by verdict: green / red the Holm-adjusted paired t-test, blue equivalence by TOST; grey
# the others (inconclusive, identical models, too few pairs).
VERDICT_COLOURS = {paired.BETTER: "#2ca02c", paired.WORSE: "#d62728", paired.EQUIVALENT: "#1f77b4"}
MARGIN_SHADE = "#1f77b4"  # the band ±margin of practical equivalence, drawn faintly behind the forest plot
GREY = "#7f7f7f"
# SVG output that is identical run after run: ids hashed with a fixed salt, text kept as text (small
# files; the browser's sans-serif font draws it), no date or creator in the metadata.
RC = {"svg.hashsalt": "bench-report", "svg.fonttype": "none", "font.size": 9.0, "axes.titlesize": 9.0,
      "legend.fontsize": 7.5, "figure.dpi": 100.0}
SVG_METADATA = {"Date": None, "Creator": None}

Series = list[tuple[float, float, float, int]]  # per point: (mean x, mean y, SD of y, seeds)


# ---------------------------------------------------------------------------------------------- data


def ok_results(records: Iterable[Result | Mapping[str, Any]]) -> list[Result]:
    """The results with status ok."""
    return [r for r in map(Result.of, records) if r.ok]


def sorted_by_strategy(records: Iterable[Result | Mapping[str, Any]]) -> dict[str, list[Result]]:
    """Results by strategy id, strategies in sorted order and each strategy's results by seed."""
    return by_strategy(sorted(map(Result.of, records), key=lambda r: (r.strategy, r.seed)))


def colours(strategies: Iterable[str]) -> dict[str, str]:
    """The site's one mapping from strategy id to colour: the references first (in rank order), then the
    other ids sorted by name, each given the next colour of PALETTE (then of EXTRA_PALETTES). Build it once
    from every strategy of the site and hand it to every figure, so a strategy keeps its colour from
    figure to figure. Past the 60 colours they repeat (never within one figure of up to 60 strategies)."""
    names = set(strategies)
    refs = paired.references(names)
    order = [*refs, *sorted(names - set(refs))]
    palette = list(PALETTE)
    if len(order) > len(palette):
        import matplotlib

        for cmap in EXTRA_PALETTES:
            palette += [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps[cmap].colors]
    return {s: palette[i % len(palette)] for i, s in enumerate(order)}


def hours_key(records: Sequence[Result]) -> str:
    """gpu_hours where every ok cell of the family records them (a GPU run), else cpu_hours."""
    ok = ok_results(records)
    return "gpu_hours" if ok and all(r.compute_number("gpu_hours") is not None for r in ok) else "cpu_hours"


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample SD (ddof 1; 0 for a single value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _round_series(results: Sequence[Result], y_key: str, x_key: str = "round") -> Series:
    """Per round number of strategy_log.rounds over the seeds: (mean x, mean y, SD of y, seeds), for
    the rounds that record both keys; rounds are in order."""
    per_round: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in results:
        for rd in r.rounds:
            x, y, k = finite_number(rd.get(x_key)), finite_number(rd.get(y_key)), finite_number(rd.get("round"))
            if x is not None and y is not None and k is not None:
                per_round[int(k)].append((x, y))
    out = []
    for k in sorted(per_round):
        xs, ys = zip(*per_round[k])
        y_mean, y_sd = _mean_sd(ys)
        out.append((float(np.mean(xs)), y_mean, y_sd, len(ys)))
    return out


def _is_loop(results: Sequence[Result]) -> bool:
    return any(r.rounds for r in results)


@dataclass(frozen=True)
class Cost:
    """A strategy's gain over the reference against its extra compute per cell, over the paired seeds."""

    comparison: paired.Comparison
    hours: float  # mean hours (CPU or GPU) per cell of the strategy
    extra: float  # hours per cell beyond the reference's
    shared_fit: float | None = None  # of `hours`, the shared generator's fit (CPU hours per cell); None: none

    @property
    def gain(self) -> float:  # points, signed so that positive is better
        c = self.comparison
        return (1 if c.higher_is_better else -1) * c.test.mean / paired.POINT


def costs(groups: Mapping[Group, Sequence[Result]], comparisons: Sequence[paired.Comparison], hours: str,
          reference: str | None) -> list[Cost]:
    """One Cost per comparison against `reference` whose paired cells all record their hours (`Result.cost_hours`;
    `hours` as from `hours_key`)."""
    out = []
    for c in comparisons:
        if c.reference != reference:
            continue
        cells = {(r.strategy, r.seed): r for r in ok_results(groups[(c.dataset, c.budget)])}
        spent = {s: [cells[(s, k)].cost_hours(hours) for k in c.seeds] for s in (c.strategy, reference)}
        if any(h is None for hs in spent.values() for h in hs):
            continue
        mine, ref = float(np.mean(spent[c.strategy])), float(np.mean(spent[reference]))
        fits = [cells[(c.strategy, k)].shared_fit_hours for k in c.seeds]
        shared = float(np.mean(fits)) if hours == "cpu_hours" and None not in fits else None
        out.append(Cost(c, mine, mine - ref, shared))
    return out


@dataclass(frozen=True)
class Sweep:
    """Strategy ids of one registered strategy whose parameters differ from a base id's in one key alone:
    a one-parameter ablation, with the base's value among the points."""

    name: str  # the registered strategy (config.strategy.name)
    key: str  # the swept parameter
    base: str  # the base strategy id
    points: tuple[tuple[Any, str], ...]  # (value, strategy id), the base's included, in order of value

    @property
    def numeric(self) -> bool:
        """Whether every value is a number (a bool is a category: guidance on/off)."""
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in self.points)


def strategy_defaults(name: str) -> dict[str, Any]:
    """The registered strategy's default parameters (its dataclass fields' defaults); {} where the registry
    does not know it or it is no dataclass."""
    import dataclasses

    from bench.registry import STRATEGIES

    try:
        cls = STRATEGIES.get(name)
    except BenchError:  # not registered here (a plug-in not installed): only the recorded parameters count
        return {}
    if not dataclasses.is_dataclass(cls):
        return {}
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _effective_params(r: Result, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's strategy parameters as it ran them: the recorded config.strategy.params over the strategy's
    `defaults` (a key that an older record lacks); a value None that the cell's `synthetic` section holds
    under the same key (mix_ratio, budget_per_class: None means the suite's) takes the section's value."""
    params = {**defaults, **((r.config.get("strategy") or {}).get("params") or {})}
    synthetic = r.config.get("synthetic") or {}
    return {k: synthetic[k] if v is None and synthetic.get(k) is not None else v for k, v in params.items()}


def _value_order(v: Any) -> tuple:
    """Numbers in numeric order before the other values in the order of their text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, repr(v))


def sweeps(records: Iterable[Result | Mapping[str, Any]],
           defaults: Callable[[str], Mapping[str, Any]] = strategy_defaults) -> list[Sweep]:
    """The one-parameter sweeps among `records` (one data set and budget): per registered strategy run
    under several ids, the base is the id whose effective parameters (`_effective_params`, with
    `defaults(name)`) differ from the most other ids' in exactly one key (ties: the id that is the
    registered name, then the first by name); each key in which some id differs from it alone is a sweep
    over the base and those ids. Pure given `defaults`; sweeps sorted by strategy name and key."""
    params: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # name -> id -> effective parameters
    for s, rs in sorted_by_strategy(records).items():
        name = rs[0].strategy_name
        if name is not None:
            params[name][s] = _effective_params(rs[0], defaults(name))

    def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
        return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))

    out = []
    for name, ids in sorted(params.items()):
        if len(ids) < 2:
            continue
        neighbours = {b: [s for s in ids if s != b and len(diff(ids[b], ids[s])) == 1] for b in ids}
        base = min(ids, key=lambda b: (-len(neighbours[b]), b != name, b))
        by_key: dict[str, list[tuple[Any, str]]] = defaultdict(list)
        for s in neighbours[base]:
            (key,) = diff(ids[base], ids[s])
            by_key[key].append((ids[s].get(key), s))
        for key, points in sorted(by_key.items()):
            points.append((ids[base].get(key), base))
            out.append(Sweep(name, key, base, tuple(sorted(points, key=lambda p: (_value_order(p[0]), p[1])))))
    return out


# ----------------------------------------------------------------------------------------- drawing


def _svg(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata=SVG_METADATA, bbox_inches="tight")
    return buf.getvalue()


def svg(draw: Callable[[], Any]) -> bytes | None:
    """Run a figure function under the report's rcParams; its SVG bytes, or None if it drew nothing."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = draw()
        return None if fig is None else _svg(fig)


def _figure(ncols: int, width_per: float = 4.6, height: float = 3.4) -> tuple[Any, list[Any]]:
    """A figure of `ncols` axes side by side; sizes in inches."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width_per * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


LEGEND_WIDTH = 2.4  # inches added to a figure for its legend on the right (labels of about 35 characters)
FRACTION = (0.0, 1.0)  # the range of a fraction (accuracy): its mean ± SD band is clipped to it


def _band(ax: Any, series: Series, colour: str, label: str, bounds: tuple[float, float] | None = None,
          **style: Any) -> None:
    """A line through the means with the band mean ± SD shaded, clipped to `bounds` (the values' range,
    e.g. FRACTION: a band past 1 would show accuracies that cannot occur)."""
    xs = [s[0] for s in series]
    ys = np.array([s[1] for s in series])
    sd = np.array([s[2] for s in series])
    low, high = ys - sd, ys + sd
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=label, **style)
    ax.fill_between(xs, low, high, color=colour, alpha=0.15, linewidth=0)


def _legend(fig: Any) -> None:
    """One legend for the whole figure, outside the axes on the right (constrained layout makes room for
    it), so that it never covers data: the entries of every axes, each label once, in order."""
    entries: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    if entries:
        fig.set_figwidth(fig.get_figwidth() + LEGEND_WIDTH)  # room for the legend: the axes keep their width
        fig.legend(list(entries.values()), list(entries), loc="outside right upper")


def _curves(by: Mapping[str, Sequence[Result]], reference: str | None = None) -> dict[str, list[str]]:
    """Strategy name -> the strategy ids that run it at two or more synthetic budgets (a frontier preset
    lists one id per budget), in order of budget, with the reference (no synthetic data; default: the
    primary reference among `by`'s strategies) first where present."""
    if reference is None:
        reference = paired.primary_reference(by)
    ids: dict[str, dict[float, str]] = defaultdict(dict)
    for s, rs in by.items():
        name, budget = rs[0].strategy_name, rs[0].synthetic_budget
        if name is not None and budget is not None and s != reference:
            ids[name][budget] = s
    start = [reference] if reference in by else []
    return {name: start + [b[k] for k in sorted(b)] for name, b in sorted(ids.items()) if len(b) >= 2}


def frontier_figure(records: Sequence[Result | Mapping[str, Any]], primary: str, colours: Mapping[str, str],
                    reference: str | None = None) -> Any | None:
    """Test primary metric against synthetic examples added (mean ± SD over seeds in both), and, for
    the loop strategies, validation accuracy against the synthetic total per round (mean ± SD band).
    A strategy run at several synthetic budgets (strategy ids of one name) is drawn as a line through
    its budgets, from the reference's point (no synthetic data; default: the primary reference among
    the records), with a ± SD band: the frontier."""
    by = sorted_by_strategy(ok_results(records))
    if reference is None:
        reference = paired.primary_reference(by)
    points = {}
    for s, rs in by.items():
        pairs = [(r.synthetic_examples, r.value(primary)) for r in rs]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if pairs:
            points[s] = pairs
    curves = {name: [s for s in ids if s in points] for name, ids in _curves(by, reference).items()}
    curves = {name: ids for name, ids in curves.items() if len(ids) >= 2}
    loops = {s: _round_series(rs, "val_accuracy", "synthetic_total") for s, rs in by.items() if _is_loop(rs)}
    loops = {s: v for s, v in loops.items() if v}
    if not points and not loops:
        return None
    fig, axes = _figure(int(bool(points)) + int(bool(loops)))
    if points:
        ax = axes[0]
        on_curve = {s for ids in curves.values() for s in ids if s != reference}
        for name, ids in curves.items():
            series = []
            for s in ids:
                (mx, _), (my, sy) = _mean_sd([p[0] for p in points[s]]), _mean_sd([p[1] for p in points[s]])
                series.append((mx, my, sy, len(points[s])))
            _band(ax, series, colours[ids[-1]], f"{name} ({len(ids) - (ids[0] == reference)} synthetic budgets)",
                  metric_range(primary))
        for s, pairs in points.items():
            if s in on_curve:
                continue
            (mx, sx), (my, sy) = _mean_sd([p[0] for p in pairs]), _mean_sd([p[1] for p in pairs])
            ax.errorbar([mx], [my], xerr=[sx], yerr=[sy], fmt="o", color=colours[s], capsize=3,
                        label=f"{s} (n={len(pairs)})")
        ax.set_xlabel("synthetic examples added")
        ax.set_ylabel(f"test {primary}")
        ax.set_title(f"test {primary} vs synthetic examples\n(mean ± SD over seeds)")
        ax.grid(alpha=0.3)
    if loops:
        ax = axes[-1]
        for s, series in loops.items():
            _band(ax, series, colours[s], s, FRACTION)
        ax.set_xlabel("synthetic examples so far (synthetic_total)")
        ax.set_ylabel("validation accuracy")
        ax.set_title("validation accuracy per round of the loop\n(mean ± SD)")
        ax.grid(alpha=0.3)
    _legend(fig)
    return fig


def budget_figure(by_group: Mapping[Group, Sequence[Result | Mapping[str, Any]]], primary: str,
                  colours: Mapping[str, str]) -> Any | None:
    """Test primary metric against the real training examples (the budgets of one data set), per
    strategy, mean ± SD band over seeds; None below two budgets."""
    if len(by_group) < 2:
        return None
    series: dict[str, Series] = defaultdict(list)
    for _, records in by_group.items():
        for s, rs in sorted_by_strategy(ok_results(records)).items():
            pairs = [(r.train_examples, r.value(primary)) for r in rs]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if pairs:
                my, sy = _mean_sd([p[1] for p in pairs])
                series[s].append((float(np.mean([p[0] for p in pairs])), my, sy, len(pairs)))
    series = {s: sorted(v) for s, v in series.items() if len(v) >= 2}
    if not series:
        return None
    fig, (ax,) = _figure(1, width_per=5.5)
    for s in sorted(series):
        _band(ax, series[s], colours[s], s, metric_range(primary))
    ax.set_xscale("log")
    # The budgets as plain numbers (100, 200, 400) instead of the log axis' 2 x 10^2 and minor ticks.
    budgets = sorted({p[0] for v in series.values() for p in v})
    ax.set_xticks(budgets, [f"{b:,.0f}" for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("real training examples (budget)")
    ax.set_ylabel(f"test {primary}")
    ax.set_title(f"test {primary} vs real-data budget (mean ± SD over seeds)")
    ax.grid(alpha=0.3)
    _legend(fig)
    return fig


def uncertainty_figure(records: Sequence[Result], colours: Mapping[str, str]) -> Any | None:
    """|U_tau| and the mean uncertainty score (in U_tau solid, in the pool dashed) per round of the loop
    strategies, mean ± SD band over seeds; None without such rounds."""
    by = {s: rs for s, rs in sorted_by_strategy(ok_results(records)).items() if _is_loop(rs)}
    sizes = {s: _round_series(rs, "uncertain") for s, rs in by.items()}
    sizes = {s: v for s, v in sizes.items() if v}
    if not sizes:
        return None
    fig, (a1, a2) = _figure(2)
    for s in sorted(sizes):
        _band(a1, sizes[s], colours[s], s, (0.0, np.inf))  # a count
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
        ax.grid(alpha=0.3)
    _legend(fig)
    return fig


def synthetic_samples(records: Sequence[Result], results: Path) -> list[tuple[str, int, dict[str, np.ndarray]]]:
    """(strategy, seed, artifact arrays) of each strategy (in order) whose artifacts hold thumbnails: its
    first seed that has them. An artifacts file that is missing or damaged is left out with a warning."""
    out = []
    for strategy, rs in sorted_by_strategy(ok_results(records)).items():
        for r in rs:
            if not artifacts.has_sidecar(dict(r.record)):
                continue
            try:
                arrays = artifacts.read_sidecar(r.cell_path(results), dict(r.record))
            except BenchError as exc:
                print(f"bench: warning: no thumbnails of {strategy} seed {r.seed}: {exc}", file=sys.stderr)
                continue
            if len(arrays.get("thumbnails", ())):
                out.append((strategy, r.seed, arrays))
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


def label(c: paired.Comparison, several: bool) -> str:
    """A comparison's strategy, with its data set and budget where a family has several."""
    return f"{c.strategy} ({c.dataset} {budget_segment(c.budget)})" if several else c.strategy


def forest_figure(comparisons: Sequence[paired.Comparison], reference: str | None = None) -> Any | None:
    """Paired mean differences against `reference` (default: the primary reference of the comparisons),
    in points, with their 95% CIs (no whisker below 2 pairs or for identical models), coloured by verdict
    (VERDICT_COLOURS), over the shaded band of the equivalence margin."""
    if reference is None:
        reference = paired.primary_reference(c.reference for c in comparisons)
    comps = [c for c in comparisons if c.reference == reference]
    if not comps:
        return None
    several = len({(c.dataset, c.budget) for c in comps}) > 1
    fig, (ax,) = _figure(1, width_per=6.0, height=0.9 + 0.32 * len(comps))
    margin = comps[0].margin / paired.POINT
    ax.axvspan(-margin, margin, color=MARGIN_SHADE, alpha=0.08, linewidth=0)
    for i, c in enumerate(comps):
        y = len(comps) - 1 - i  # first comparison on top
        t = c.test
        colour = VERDICT_COLOURS.get(c.verdict, GREY)
        if t.ci_low is not None and c.verdict != paired.IDENTICAL:
            ax.plot([t.ci_low / paired.POINT, t.ci_high / paired.POINT], [y, y], color=colour, linewidth=1.5)
        ax.plot([t.mean / paired.POINT], [y], "o", color=colour)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(comps)), [label(c, several) for c in reversed(comps)])
    arrow = "higher" if comps[0].higher_is_better else "lower"
    ax.set_xlabel(f"Δ {comps[0].metric} vs {reference} (points, 95% CI; {arrow} is better)")
    ax.set_title(f"paired differences (green better, red worse: Holm-adjusted paired t;\nblue equivalent: TOST "
                 f"within the shaded ±{margin:g}; grey inconclusive, identical or too few pairs)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def cost_figure(cost_rows: Sequence[Cost], unit: str, palette: Mapping[str, str] | None = None) -> Any | None:
    """Gain over the reference (points, 95% CI) against the extra hours per cell, each strategy in its
    colour of `palette` (the site's mapping; default: `colours` of the rows' strategies)."""
    if not cost_rows:
        return None
    several = len({(k.comparison.dataset, k.comparison.budget) for k in cost_rows}) > 1
    fig, (ax,) = _figure(1, width_per=6.0, height=3.6)
    if palette is None:
        palette = colours([k.comparison.strategy for k in cost_rows])
    first = cost_rows[0].comparison
    sign = 1 if first.higher_is_better else -1
    for k in cost_rows:
        t = k.comparison.test
        yerr = None
        if t.ci_low is not None:
            lo, hi = sorted((sign * t.ci_low / paired.POINT, sign * t.ci_high / paired.POINT))
            yerr = [[k.gain - lo], [hi - k.gain]]
        ax.errorbar([k.extra], [k.gain], yerr=yerr, fmt="o", capsize=3, color=palette[k.comparison.strategy],
                    label=label(k.comparison, several))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"extra {unit} per cell over {first.reference}")
    ax.set_ylabel(f"gain in {first.metric} over {first.reference} (points, 95% CI)")
    ax.set_title("cost: gain against extra compute")
    ax.grid(alpha=0.3)
    _legend(fig)
    return fig


def sweep_figure(records: Sequence[Result | Mapping[str, Any]], primary: str, colours: Mapping[str, str],
                 found: Sequence[Sweep] | None = None) -> Any | None:
    """One axes per one-parameter sweep (`sweeps` of the records, one data set and budget; or `found`):
    the test primary metric's mean against the parameter's value with its 95% CI (Student's t over the
    seeds; none for one seed), numbers on a numeric axis with a band, other values as categories with
    whiskers; each point in its strategy's colour, the base ringed. The references among the records
    (their registered reference ranks) are horizontal lines with their CI bands. None without a sweep."""
    ok = ok_results(records)
    found = sweeps(ok) if found is None else found
    by = sorted_by_strategy(ok)
    stats = {}  # strategy id -> (mean, CI low, CI high, seeds); CI None below two seeds
    for s, rs in by.items():
        vals = [v for v in (r.value(primary) for r in rs) if v is not None]
        if vals:
            mean, _, low, high = paired.mean_ci(vals)
            stats[s] = (mean, low, high, len(vals))
    found = [sw for sw in found if sum(s in stats for _, s in sw.points) >= 2]
    if not found:
        return None
    fig, axes = _figure(len(found), width_per=4.2)
    for ax, sw in zip(axes, found):
        points = [(v, s) for v, s in sw.points if s in stats]
        xs = [float(v) for v, _ in points] if sw.numeric else list(range(len(points)))
        ms = np.array([stats[s][0] for _, s in points])
        if sw.numeric:  # the line through the means and its band (where every point has a CI)
            ax.plot(xs, ms, color=GREY, linewidth=1.0, zorder=1)
            if all(stats[s][1] is not None for _, s in points):
                ax.fill_between(xs, [stats[s][1] for _, s in points], [stats[s][2] for _, s in points],
                                color=GREY, alpha=0.15, linewidth=0)
        for x, (_, s) in zip(xs, points):
            mean, low, high, n = stats[s]
            yerr = None if low is None or sw.numeric else [[mean - low], [high - mean]]
            ax.errorbar([x], [mean], yerr=yerr, fmt="o", color=colours[s], capsize=3, zorder=3,
                        label=f"{s} (n={n})")
            if s == sw.base:
                ax.plot([x], [mean], "o", markersize=11, markerfacecolor="none", color=colours[s], zorder=3)
        for ref in paired.references(s for s in stats if s not in {p[1] for p in sw.points}):
            mean, low, high, n = stats[ref]
            ax.axhline(mean, color=colours[ref], linewidth=1.0, linestyle="--", label=f"{ref} (n={n})")
            if low is not None:
                ax.axhspan(low, high, color=colours[ref], alpha=0.08, linewidth=0)
        if not sw.numeric:
            ax.set_xticks(xs, [str(v) for v, _ in points])
            ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_xlabel(f"{sw.name}: {sw.key} (base {sw.base}, ringed)")
        ax.set_ylabel(f"test {primary}")
        ax.set_title(f"{sw.key} sweep: test {primary}\n(mean, 95% CI over seeds)")
        ax.grid(alpha=0.3)
    _legend(fig)
    return fig
