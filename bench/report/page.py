"""The report's HTML: one section per suite family (suite, version, preset) with its summary table, the
leaderboard's full metric tables, its figures (bench.report.figures) and its cost table, and the page
around the sections.

The verdict columns and the cost are against the family's primary reference: of its strategies, the
one whose registered capabilities declare the lowest `reference` rank. The secondary columns of the
summary table are the metrics whose capabilities declare a `summary` rank, in ascending rank, at most
N_SECONDARY (never the primary metric); the full tables have every metric.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bench import leaderboard
from bench import stats as paired
from bench.config import budget_text, read_suite_file
from bench.errors import BenchError
from bench.registry import METRICS, SUITES
from bench.report import figures
from bench.results import Family, Group, Result, budget_segment, scalar_metrics

FIGURES = "figures"  # sub-folder of the output folder holding the SVG files
N_SECONDARY = 3  # secondary metrics in the summary table
NUM = ' class="num"'  # right-aligned table cell
# What the cost columns count (Result.cost_hours), in words
COST_BASIS = ("CPU time from compute.charged_cpu_seconds (a shared generator's fit charged alike to every "
              "strategy that samples it), else compute.cpu_seconds, not wall time (GPU hours on a GPU run)")

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right}
td.num{white-space:nowrap}
tr.reference td{background:#f4f4f4}
.better{color:#1a7f1a;font-weight:600}.worse{color:#b00;font-weight:600}.equivalent{color:#1f5fa8;font-weight:600}
p.alarm{color:#b00;font-weight:600}
figure{margin:1em 0}figcaption{font-size:.85em;color:#444}
img{max-width:100%;height:auto}
section{border-top:2px solid #ddd;margin-top:2em}
details{margin:.5em 0 1em}summary{cursor:pointer}
div.scroll{overflow-x:auto;max-width:100%}div.scroll table{margin:0}div.scroll{margin:.5em 0 1em}
table.overview td.better{background:#e3f4e3}table.overview td.worse{background:#fbe3e3}
table.overview td.equivalent{background:#e3edf8}table.overview td.at-chance,table.overview td.identical{color:#666}
span.flag{display:block;font-size:.85em;color:#8a5a00}
"""


# "50 real images per class" and the like in a suite's description: the budget that a preset with other
# budgets (the frontier preset's 50, 100 and 200) must not repeat
PER_CLASS = re.compile(r"\b(\d+)( real \w+ per class)")


def suite_description(name: str, version: int, budgets: Sequence[int | str] = ()) -> str:
    """The registered suite's `description`; where the registered file is a newer version than these
    results, marked as such (a newer version may describe different runs); "" where the suite is not
    registered here. With `budgets` (the real-data budgets of the results shown), a budget per class the
    text names is replaced by those budgets where they differ ("50/100/200 real images per class")."""
    try:
        if name not in SUITES:
            return ""
        raw = read_suite_file(Path(SUITES.get(name)))
    except BenchError:  # a plug-in that fails to load, an unreadable file: the report goes on without
        return ""
    text = str(raw.get("description") or "")
    if budgets and all(isinstance(b, int) for b in budgets):  # budgets per class, as the text counts them
        numbers = sorted(budgets)
        text = PER_CLASS.sub(lambda m: m[0] if [int(m[1])] == numbers else f"{budget_list(numbers)}{m[2]}", text)
    if text and raw.get("version") != version:
        text += f" (as the suite file describes its version {raw.get('version')}; these results are version {version})"
    return text


def budget_list(budgets: Sequence[int | str]) -> str:
    """Budgets as a short list: "50/100/200"."""
    return "/".join(str(b) for b in budgets)


def secondary_metrics(directions: Mapping[str, bool], primary: str) -> list[str]:
    """The summary table's secondary columns: of the metrics in `directions` other than `primary`, those
    whose registered capabilities declare a `summary` rank, in ascending rank, at most N_SECONDARY."""
    ranked = sorted((rank, m) for m in directions
                    if m != primary and m in METRICS and (rank := METRICS.caps(m).summary) is not None)
    return [m for _, m in ranked][:N_SECONDARY]


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _td(x: Any, num: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{_e(x)}</td>"


def _markdown_table(md: str) -> str:
    """The pipe tables of a markdown text (the leaderboard's rendering of one group) as HTML tables."""
    blocks: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return "".join(_html_table(b) for b in blocks if b)


def scroll(table: str) -> str:
    """A table in a box that scrolls sideways where the table is wider than the page."""
    return f'<div class="scroll">{table.rstrip()}</div>\n'


def _html_table(lines: list[str]) -> str:
    rows = [line.strip().strip("|").split(" | ") for line in lines if line.startswith("| ")]
    align = [line for line in lines if line.startswith("|--") or line.startswith("|---")]
    right = [a.endswith(":") for a in align[0].strip("|").split("|")] if align else []
    cells = lambda row, tag: "".join(  # noqa: E731
        f"<{tag}{NUM if i < len(right) and right[i] else ''}>{_e(x.strip())}</{tag}>" for i, x in enumerate(row))
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows[1:])
    return scroll(f"<table><thead><tr>{cells(rows[0], 'th')}</tr></thead><tbody>{body}</tbody></table>")


def _img(name: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{FIGURES}/{_e(name)}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>\n")


def section(family: Family, groups: Mapping[Group, Sequence[Result]], comparisons: Sequence[paired.Comparison],
            svgs: dict[str, bytes], results: Path | None = None, colours: Mapping[str, str] | None = None) -> str:
    """The HTML section of one family; the SVG figures it shows are added to `svgs` (file name -> bytes).
    With `results` (the results folder), image suites get the grid of synthetic thumbnails. `colours`: the
    site's strategy colours (figures.colours of every strategy shown); default: those of this family."""
    suite, version, preset = family
    records = [r for rs in groups.values() for r in rs]
    primary = records[0].primary_metric
    directions = scalar_metrics(records)
    secondary = secondary_metrics(directions, primary)
    hours = figures.hours_key(records)
    unit = "GPU hours" if hours == "gpu_hours" else "CPU hours"
    if colours is None:
        colours = figures.colours({r.strategy for r in records})
    reference = paired.primary_reference({r.strategy for r in records})
    several = len(groups) > 1
    anchor = f"{suite}-v{version}-{preset}"
    stem = f"{suite}-v{version}-{preset}"
    description = suite_description(suite, version, list(dict.fromkeys(b for _, b in groups)))
    parts = [f'<section id="{_e(anchor)}">\n<h2>{_e(suite)} v{version} · preset {_e(preset)}</h2>\n']
    if description:
        parts.append(f'<p class="description">{_e(description)}</p>\n')
    arrow = "↑" if directions.get(primary, True) else "↓"
    if reference is None:
        parts.append(f"<p>Primary metric: <b>{_e(primary)}</b> {arrow}. No strategy of these results is a "
                     "reference of the verdicts.</p>\n")
    else:
        margin = f"±{comparisons[0].margin / paired.POINT:g} points" if comparisons else "the suite's margin"
        parts.append(f"<p>Primary metric: <b>{_e(primary)}</b> {arrow}. Verdicts against {_e(reference)}, paired by "
                     "seed: better or worse by the Holm-adjusted paired t-test over the suite's comparisons; else "
                     f"equivalent when the 90% CI lies inside {_e(margin)} (TOST); else inconclusive; identical where "
                     "both models are the same. Δ in points (0.01 of the metric) with its 95% confidence interval.</p>\n")
        for sentence in paired.control_sentences(comparisons) if comparisons else []:
            alarm = ' class="alarm"' if sentence.startswith("⚠") else ""
            parts.append(f"<p{alarm}>{_e(sentence.replace('**', ''))}</p>\n")
    parts.append(_summary_table(groups, comparisons, reference, primary, directions, secondary, hours, several))
    if comparisons:
        parts.append(f"<p>{_e(paired.power_sentence(comparisons))}</p>\n")
    equivalents = paired.real_equivalents(records)  # several real budgets: what the synthetic data is worth
    if equivalents:
        parts.append(f"<p>{_e(leaderboard.EQUIVALENT_NOTE)}</p>\n"
                     + _markdown_table(leaderboard.equivalent_table(equivalents)))
    parts.append("<details><summary>All metrics</summary>\n")
    for (dataset, budget), rs in groups.items():
        parts.append(f"<h4>{_e(dataset)} · {_e(budget_text(budget))}</h4>\n")
        parts.append(_markdown_table(leaderboard._table(suite, version, preset, dataset, budget, list(rs))))
    parts.append("</details>\n")

    def add(name: str, draw: Callable[[], Any], alt: str, caption: str) -> None:
        svg = figures.svg(draw)
        if svg is not None:
            svgs[name] = svg
            parts.append(_img(name, alt, caption))

    for (dataset, budget), rs in groups.items():
        where = f"{stem}-{dataset}-{budget_segment(budget)}"
        title = f"{dataset} · {budget_text(budget)}"
        add(f"{where}-frontier.svg", lambda rs=rs: figures.frontier_figure(rs, primary, colours, reference),
            f"efficiency frontier, {title}",
            f"Efficiency frontier, {title}: test {primary} against the synthetic examples each strategy added; "
            "validation accuracy against the synthetic total per round of the loop strategies.")
        add(f"{where}-uncertainty.svg", lambda rs=rs: figures.uncertainty_figure(rs, colours),
            f"uncertainty per round, {title}",
            f"Uncertainty per round, {title}: |U_tau| and the mean uncertainty score in U_tau and in the pool.")
        add(f"{where}-sweeps.svg", lambda rs=rs: figures.sweep_figure(rs, primary, colours),
            f"one-parameter sweeps, {title}",
            f"One-parameter sweeps, {title}: per parameter that strategy ids of one registered strategy vary alone "
            f"(found from their recorded parameters), test {primary} against its value, mean with its 95% CI over "
            "the seeds (Student's t), the base ringed; the references as dashed lines with their CI bands.")
        if results is not None:
            add(f"{where}-synthetic.svg",
                lambda rs=rs: figures.thumbnail_figure(figures.synthetic_samples(rs, results)),
                f"synthetic images, {title}", f"Synthetic images, {title}: a seeded sample of each strategy's synthetic "
                "data, spread over the classes (the first seed whose artifacts hold one), one row per strategy.")
    for dataset in dict.fromkeys(d for d, _ in groups):
        by_budget = {g: rs for g, rs in groups.items() if g[0] == dataset}
        add(f"{stem}-{dataset}-budgets.svg", lambda b=by_budget: figures.budget_figure(b, primary, colours),
            f"test {primary} against the real-data budget, {dataset}",
            f"Test {primary} against the real training examples, {dataset}: one point per budget.")
    add(f"{stem}-forest.svg", lambda: figures.forest_figure(comparisons, reference), f"forest plot against {reference}",
        f"Paired differences against {reference} with 95% confidence intervals. Colour: the verdict; green (better) "
        "and red (worse) follow the Holm-adjusted paired t-test, blue (equivalent) the TOST within the shaded margin "
        "(it reads the 90% CI, narrower than the 95% CI drawn), "
        "grey the rest (inconclusive, identical models, too few pairs).")
    cost_rows = figures.costs(groups, comparisons, hours, reference)
    add(f"{stem}-cost.svg", lambda: figures.cost_figure(cost_rows, unit, colours), "cost per point",
        f"Cost: gain in {primary} over {reference} against the extra {unit} per cell ({COST_BASIS}).")
    if cost_rows:
        parts.append(_cost_table(cost_rows, unit, several))
    parts.append("</section>\n")
    return "".join(parts)


def _summary_table(groups: Mapping[Group, Sequence[Result]], comparisons: Sequence[paired.Comparison],
                   reference: str | None, primary: str, directions: Mapping[str, bool], secondary: Sequence[str],
                   hours_key: str, several: bool) -> str:
    arrow = lambda n: "↑" if directions.get(n, True) else "↓"  # noqa: E731
    hours = "GPU h per cell" if hours_key == "gpu_hours" else "CPU h per cell"
    head = (["data"] if several else []) + ["strategy", f"{primary} {arrow(primary)}", "seeds",
                                           f"vs {reference or 'reference'}", "Δ points [95% CI]", "p (Holm)"]
    head += [f"{m} {arrow(m)}" for m in secondary] + [hours]
    numeric = {f"{primary} {arrow(primary)}", "seeds", "Δ points [95% CI]", "p (Holm)", hours,
               *(f"{m} {arrow(m)}" for m in secondary)}
    lines = ['<table class="summary"><thead><tr>'
             + "".join(f"<th{NUM if h in numeric else ''}>{_e(h)}</th>" for h in head)
             + "</tr></thead><tbody>\n"]
    verdicts = {(c.dataset, c.budget, c.strategy): c for c in comparisons if c.reference == reference}
    higher = directions.get(primary, True)
    for (dataset, budget), records in groups.items():
        rows = []
        for s, rs in figures.sorted_by_strategy(records).items():
            ok = figures.ok_results(rs)
            vals = [v for v in (r.value(primary) for r in ok) if v is not None]
            rows.append((s, ok, vals))
        # Best primary mean first (as in the leaderboard); strategies without a value last.
        rows.sort(key=lambda row: (1, 0.0, row[0]) if not row[2] else
                  (0, -np.mean(row[2]) if higher else np.mean(row[2]), row[0]))
        for s, ok, vals in rows:
            c = verdicts.get((dataset, budget, s))
            cls = ' class="reference"' if s == reference else ""
            cells = [_td(f"{dataset} {budget_segment(budget)}")] if several else []
            cells += [_strategy_cell(s, ok), _td(leaderboard._mean_std(vals), num=True), _td(len(vals), num=True)]
            if c is not None:
                cells += [_td(paired.verdict_text(c), cls="verdict " + c.verdict.replace(" ", "-")),
                          _td(paired.delta_text(c), num=True),
                          _td(leaderboard._fmt_p(c.p_holm), num=True)]
            else:
                cells += [_td("reference" if s == reference else "—", cls="verdict"), _td("—", num=True),
                          _td("—", num=True)]
            for m in secondary:
                cells.append(_td(leaderboard._mean_std([v for v in (r.value(m) for r in ok) if v is not None]),
                                 num=True))
            spent = [r.cost_hours(hours_key) for r in ok]
            cells.append(_td("—" if not spent or None in spent else leaderboard._three(float(np.mean(spent))),
                             num=True))
            lines.append(f'<tr data-strategy="{_e(s)}" data-dataset="{_e(dataset)}" '
                         f'data-budget="{_e(budget_segment(budget))}"{cls}>' + "".join(cells) + "</tr>\n")
    lines.append("</tbody></table>")
    return scroll("".join(lines)) + f"<p>{_e(hours)}: mean over the seeds, {_e(COST_BASIS)}.</p>\n"


def _strategy_cell(strategy: str, ok: Sequence[Result]) -> str:
    """The strategy's name, flagged where it is a loop that returned its round-0 model in every seed: that
    model is the real-data model (real_only's), whatever the loop synthesised."""
    rounds = [paired.loop_round(r) for r in ok]
    if not rounds or any(k != 0 for k in rounds):
        return _td(strategy)
    return (f"<td>{_e(strategy)}<span class=\"flag\">identical to the real-data model: round 0 returned in "
            f"all {len(rounds)} seeds</span></td>")


def _cost_table(rows: Sequence[figures.Cost], unit: str, several: bool) -> str:
    short = "GPU h" if unit == "GPU hours" else "CPU h"
    head = (["data"] if several else []) + ["strategy", "gain (points)", f"{short} per cell",
                                           "of which shared generator fit", f"extra {short} per cell",
                                           f"points per extra {short}", f"extra {short} per point"]
    out = ["<table class=\"cost\"><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>\n"]
    for k in rows:
        c = k.comparison
        per_hour = "—" if k.extra <= 0 else f"{k.gain / k.extra:.3g}"  # no extra cost: a ratio means nothing
        per_point = f"{k.extra / k.gain:.3g}" if k.gain > 0 and k.extra > 0 else ("no gain" if k.gain <= 0 else "—")
        cells = [_td(f"{c.dataset} {budget_segment(c.budget)}")] if several else []
        cells += [_td(c.strategy), _td(f"{k.gain:+.2f}", num=True), _td(f"{k.hours:.3g}", num=True),
                  _td("—" if k.shared_fit is None else f"{k.shared_fit:.3g}", num=True),
                  _td(f"{k.extra:+.3g}", num=True), _td(per_hour, num=True), _td(per_point, num=True)]
        out.append("<tr>" + "".join(cells) + "</tr>\n")
    out.append("</tbody></table>")
    out = [scroll("".join(out))]
    out.append(f"<p>Cost per point: extra {unit} per cell over {_e(rows[0].comparison.reference)} divided by the gain "
               "in points (mean over the paired seeds; the gain's sign counts the metric's direction, so positive is "
               f"better). Hours: {_e(COST_BASIS)}; \"of which shared generator fit\": the part of a cell's hours that is "
               "the generator's one fit per suite version, charged alike to every strategy that samples it (— where "
               "the strategy samples no shared generator).</p>\n")
    return "".join(out)


def page(sections: Sequence[str], families: Sequence[Family], summary: str = "") -> str:
    """The whole index.html: the summary table (bench.report.overview), a table of contents of the
    families, then their sections."""
    toc = "".join(f'<li><a href="#{_e(f"{s}-v{v}-{p}")}">{_e(s)} v{v} · preset {_e(p)}</a></li>'
                  for s, v, p in families)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>Active synthesis benchmark: report</title>\n"
            f"<style>\n{CSS}</style>\n</head>\n<body>\n<h1>Active synthesis benchmark: report</h1>\n"
            "<p>Generated by <code>bench report</code> from the result files; do not edit by hand. Metric cells: "
            "mean ± standard deviation over the seeds with status ok. Compute: mean per cell (one seed).</p>\n"
            f"{summary}<h2>Suites</h2>\n<ul>{toc}</ul>\n" + "".join(sections) + "</body>\n</html>\n")
