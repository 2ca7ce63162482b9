"""The table that opens index.html and answers "does the method beat the baselines?" at a glance: a row
per suite family (suite, version, preset), data set and budget, and method strategy (a strategy id whose
registered strategy has kind "method"); a column per reference of the site (bench.stats.references:
real_only, random_synthetic, loop_real_only, in rank order) holding the method's verdict against it, with
Δ in points and its 95% CI; and the power check: the positive control against the family's primary
reference (whether the suite can see an effect of more real data at all), with any negative-control alarm.
Every verdict and text is bench.stats's (`verdict_text`, `delta_text`); a cell is coloured by its verdict.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from bench import stats as paired
from bench.config import budget_text
from bench.registry import STRATEGIES
from bench.results import Family, Group, Result, budget_segment

NONE = "—"  # no comparison: the reference did not run in this family, or the pair shares no seed


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def is_method(r: Result) -> bool:
    """Whether the cell's registered strategy (config.strategy.name, else its id: a frontier preset runs
    active_synthesis under ids such as active_synthesis_s100) has kind "method"."""
    name = r.strategy_name or r.strategy
    return name in STRATEGIES and STRATEGIES.caps(name).kind == "method"


def _verdict_cell(c: paired.Comparison | None, reference: str) -> str:
    if c is None:
        return f'<td class="verdict" data-reference="{_e(reference)}">{NONE}</td>'
    return (f'<td class="verdict {_e(c.verdict.replace(" ", "-"))}" data-reference="{_e(reference)}">'
            f"{_e(paired.verdict_text(c))}<br>{_e(paired.delta_text(c))}</td>")


def _power_cell(comparisons: Sequence[paired.Comparison], primary: str | None) -> str:
    """The positive control against `primary` (the first one detected, else the first one), and an alarm for
    each negative control that comes out better than a reference."""
    positives = [c for c in comparisons if c.reference == primary and paired.control_role(c.strategy) == "positive"]
    alarms = [c for c in comparisons if c.verdict == paired.BETTER and paired.control_role(c.strategy) == "negative"]
    lines, cls = [], ""
    if positives:
        c = next((c for c in positives if c.verdict == paired.BETTER), positives[0])
        cls = c.verdict.replace(" ", "-")
        detected = "detected" if c.verdict == paired.BETTER else "not detected"
        lines.append(f'<span title="{_e(c.strategy)} vs {_e(c.reference)}: {_e(paired.verdict_text(c))}">{detected}'
                     f"</span><br>{_e(paired.delta_text(c))}")
    else:
        lines.append("not run")
    lines += [f'<b class="worse">⚠ {_e(c.strategy)} (negative control) better than {_e(c.reference)}: '
              f"{_e(paired.delta_text(c))}</b>" for c in alarms]
    classes = " ".join(("verdict", "power", cls)).strip()
    return f'<td class="{_e(classes)}" data-reference="power">{"<br>".join(lines)}</td>'


def overview(families: Mapping[Family, Mapping[Group, Sequence[Result]]],
             verdicts: Mapping[Family, Sequence[paired.Comparison]]) -> str:
    """The HTML of the table (in a sideways-scrolling box) with the paragraph that reads it."""
    refs = paired.references({c.reference for comps in verdicts.values() for c in comps})
    # Narrow columns first and the power check before the verdicts, so that the row reads at 1,280 px:
    # is the suite able to see an effect, then what the method does against each reference.
    head = ["suite", "data set · budget · metric", "method", "power check: positive control vs primary reference",
            *(f"vs {r}" for r in refs)]
    rows = []
    for fam in sorted(families):
        suite, version, preset = fam
        comps = verdicts.get(fam, [])
        primary = paired.primary_reference(c.reference for c in comps)
        for (dataset, budget), records in families[fam].items():
            results = [Result.of(r) for r in records]
            mine = [c for c in comps if (c.dataset, c.budget) == (dataset, budget)]
            by_pair = {(c.strategy, c.reference): c for c in mine}
            methods = sorted({r.strategy for r in results if is_method(r)}) or [None]
            metric = results[0].primary_metric
            higher = next((h for r in results if (h := r.higher_is_better(metric)) is not None), True)
            for m in methods:
                anchor = f"{suite}-v{version}-{preset}"
                cells = [f'<td><a href="#{_e(anchor)}">{_e(suite)}</a> v{version} · {_e(preset)}</td>',
                         f"<td>{_e(dataset)} · {_e(budget_text(budget))} · {_e(metric)} {'↑' if higher else '↓'}</td>",
                         f"<td>{_e(m) if m else 'no method run'}</td>", _power_cell(mine, primary)]
                cells += [_verdict_cell(by_pair.get((m, r)) if m else None, r) for r in refs]
                rows.append(f'<tr data-family="{_e(anchor)}" data-dataset="{_e(dataset)}" '
                            f'data-budget="{_e(budget_segment(budget))}" data-method="{_e(m or "")}">'
                            + "".join(cells) + "</tr>\n")
    table = ('<table class="overview"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
             + "</tr></thead><tbody>\n" + "".join(rows) + "</tbody></table>")
    return ("<h2 id=\"summary\">Does the method beat the baselines?</h2>\n"
            "<p>One row per suite family, data set and budget, and method strategy. Each cell: the method's verdict "
            "against the column's strategy, paired by seed (better or worse by the Holm-adjusted paired t-test over "
            "the family's comparisons; equivalent when the 90% CI lies inside the suite's margin (TOST); else "
            "inconclusive; identical where both returned the same model, with the seeds that returned round 0; "
            "no verdict where the reference is at chance), then Δ = method − reference in points (0.01 of the "
            "metric) with its 95% CI. The power check: is the positive control (real, correctly labelled examples in "
            "place of synthetic ones) detected as better than the primary reference? Where it is not, the suite "
            f"cannot see even more real data, and the row's equivalent verdicts are shown inconclusive. {NONE}: the "
            "column's strategy did not run there.</p>\n"
            f'<div class="scroll">{table}</div>\n')
