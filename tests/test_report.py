"""`bench report`: the static HTML site built from committed results (copied into a temporary folder):
it parses, lists every suite and strategy, every figure it references exists and is an SVG, its verdicts
are bench.stats's, a rebuild is byte-identical, and bad input is one line and exit 2. Where a Chromium
binary is installed, the page also loads in a headless browser without console messages or broken images."""
from __future__ import annotations

import html
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from bench import leaderboard, report
from bench import stats as paired
from bench.cli import main
from bench.report import figures
from bench.report.overview import is_method
from bench.report.page import _strategy_cell, secondary_metrics, suite_description
from bench.results import Result, budget_segment, iter_results

RESULTS = Path(__file__).resolve().parents[1] / "results"
SUITES = ("transactions", "pneumoniamnist")  # a tabular suite with 6 strategies, an image suite with 4


class Page(HTMLParser):
    """What the tests read from index.html: sections (id -> heading), summary rows per section
    (strategy -> {column class: text}), and every <img src> / <object data>."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}
        self.rows: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)  # section -> strategy -> cells
        # section -> strategy -> the texts of all its cells, row after row (a section with several data set /
        # budget groups has a row per group)
        self.cells: dict[str, dict[str, list[str]]] = defaultdict(dict)
        self.sources: list[str] = []
        self._section = ""
        self._capture: str | None = None  # "h2", "description" or a td
        self._row: str | None = None
        self._td_class = ""
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._section = a["id"] or ""
        elif tag == "h2" and self._section:
            self._capture, self._text = "h2", []
        elif tag == "p" and a.get("class") == "description":
            self._capture, self._text = "description", []
        elif tag == "tr" and a.get("data-strategy"):
            self._row = a["data-strategy"]
            self.cells[self._section].setdefault(self._row, [])
        elif tag == "td" and self._row:
            self._capture, self._text, self._td_class = "td", [], a.get("class") or ""
        elif tag == "img":
            self.sources.append(a["src"] or "")
        elif tag == "object":
            self.sources.append(a["data"] or "")

    def handle_data(self, data: str) -> None:
        if self._capture:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text).strip()
        if tag == "h2" and self._capture == "h2":
            self.headings[self._section] = text
        elif tag == "p" and self._capture == "description":
            self.descriptions[self._section] = text
        elif tag == "td" and self._capture == "td" and self._row:
            self.cells[self._section][self._row].append(text)
            if "verdict" in self._td_class.split():
                self.rows[self._section][self._row] = {"verdict": text}
        elif tag == "tr":
            self._row = None
        elif tag == "section":
            self._section = ""
        if tag in ("h2", "p", "td"):
            self._capture = None


def parse(index: Path) -> Page:
    page = Page()
    page.feed(index.read_text(encoding="utf-8"))
    page.close()
    return page


def copy_results(dest: Path, suites: tuple[str, ...] = SUITES) -> Path:
    for s in suites:
        if not (RESULTS / s).is_dir():
            pytest.skip(f"committed results of suite {s} are not in {RESULTS}")
        shutil.copytree(RESULTS / s, dest / s)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = copy_results(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("site") / "site"  # not there yet: bench report creates it
    assert main(["report", "--results", str(root), "--out", str(out)]) == 0
    return root, out


def test_index_lists_every_suite_and_strategy(built: tuple[Path, Path]) -> None:
    root, out = built
    page = parse(out / "index.html")
    groups = leaderboard.collect(root)
    assert {k[0] for k in groups} == set(SUITES)
    strategies: dict[str, set[str]] = defaultdict(set)  # a section holds every (dataset, budget) group of its family
    for (suite, version, preset, _, _), records in groups.items():
        section = f"{suite}-v{version}-{preset}"
        assert page.headings[section].startswith(f"{suite} v{version}")
        assert page.descriptions.get(section), f"{section}: the registered suite's description is missing"
        strategies[section] |= {r["cell"]["strategy"] for r in records}
    for section, names in strategies.items():
        assert set(page.rows[section]) == names
    assert len(page.headings) == len({k[:3] for k in groups})


def test_every_figure_exists_and_is_an_svg(built: tuple[Path, Path]) -> None:
    _, out = built
    sources = parse(out / "index.html").sources
    assert sources and len(sources) == len(set(sources))
    for src in sources:
        path = out / src
        assert path.is_file(), src
        assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg", src
    # Every figure kind where its data exists (both suites have loop strategies and real_only), and no
    # file in figures/ that the page does not show.
    for suite in SUITES:
        for kind in ("frontier", "uncertainty"):
            assert any(s.startswith(f"figures/{suite}-v") and s.endswith(f"-{kind}.svg") for s in sources), (suite, kind)
        for kind in ("forest", "cost"):
            assert any(s.startswith(f"figures/{suite}-v") and s.endswith(f"-cpu-{kind}.svg") for s in sources), (suite, kind)
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(Path(s).name for s in sources)
    text = (out / "figures" / Path(sources[0]).name).read_text()
    assert "validation accuracy" in text and "<dc:date>" not in text  # the label asked for; no timestamp


def test_verdicts_are_those_of_bench_stats(built: tuple[Path, Path]) -> None:
    root, out = built
    page = parse(out / "index.html")
    families = paired.compare(leaderboard.collect(root))
    checked = 0
    for (suite, version, preset), comps in families.items():
        for c in comps:
            if c.reference != "real_only":
                continue
            section = f"{suite}-v{version}-{preset}"
            cells = page.cells[section][c.strategy]
            at = next((i for i, cell in enumerate(cells) if cell == paired.delta_text(c)), None)
            assert at is not None, (section, c.strategy)
            # the verdict cell precedes the difference, in the words of the leaderboard's verdict table
            assert c.verdict in paired.VERDICTS and cells[at - 1] == paired.verdict_text(c), (section, c.strategy)
            checked += 1
    assert checked >= 8  # 5 strategies against real_only in transactions, 3 in pneumoniamnist
    assert page.rows["transactions-v3-cpu"]["real_only"]["verdict"] == "reference"
    text = (out / "index.html").read_text(encoding="utf-8")
    for comps in families.values():  # each section opens with its power check, as the leaderboard's table does
        assert all(html.escape(sentence.replace("**", "")) in text for sentence in paired.control_sentences(comps))
    # The forest plot's colour is the verdict's, and the caption says which test decides it.
    assert "green (better) and red (worse) follow the Holm-adjusted paired t-test" in text


def test_a_rebuild_is_byte_identical_and_drops_stale_figures(built: tuple[Path, Path], tmp_path: Path) -> None:
    root, out = built
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    second = tmp_path / "again"
    shutil.copytree(out, second)
    (second / "figures" / "old-suite-v1-cpu-forest.svg").write_text("<svg/>")  # from an earlier build
    (second / "notes.txt").write_text("mine")  # not the report's: left alone
    report.build(root, second)
    after = {p.relative_to(second): p.read_bytes() for p in sorted(second.rglob("*")) if p.is_file()}
    assert after.pop(Path("notes.txt")) == b"mine"
    assert after == before


def test_the_frontier_preset_gets_a_budget_figure_with_its_budgets_as_ticks(built: tuple[Path, Path]) -> None:
    """The committed frontier preset runs real budgets of 50, 100 and 200 per class: its section has a
    row per budget and the figure against the real-data budget, whose ticks are the real training examples
    (two classes: 100, 200, 400) written out, each strategy a line through all three."""
    root, out = built
    page = parse(out / "index.html")
    assert "figures/pneumoniamnist-v2-frontier-pneumoniamnist-budgets.svg" in page.sources
    cells = page.cells["pneumoniamnist-v2-frontier"]["active_synthesis_s100"]
    assert [f"pneumoniamnist n{b}" in cells for b in (50, 100, 200)] == [True] * 3
    groups = {k[3:]: rs for k, rs in leaderboard.collect(root / "pneumoniamnist").items() if k[2] == "frontier"}
    colours = figures.colours(sorted({r["cell"]["strategy"] for rs in groups.values() for r in rs}))
    fig = figures.budget_figure(groups, "balanced_accuracy", colours)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "200", "400"]
    assert {len(line.get_xdata()) for line in ax.get_lines()} == {3}
    assert len(ax.get_lines()) == 7  # real_only and three synthetic budgets each of the control and the method


def test_a_strategy_at_several_synthetic_budgets_is_one_frontier_line() -> None:
    """A frontier preset runs a strategy under one id per synthetic budget: the figure joins them, from
    the real_only point, into one line per strategy name, at the mean synthetic examples each added."""
    records = [r for _, r in iter_results(RESULTS / "pneumoniamnist" / "v2" / "cpu")
               if r["cell"]["strategy"] in ("real_only", "random_synthetic", "smote")]
    more = []
    for r in records:
        if r["cell"]["strategy"] == "random_synthetic":  # the same cells, relabelled as a budget of 200
            r = json.loads(json.dumps(r))
            r["cell"]["strategy"] = r["config"]["strategy"]["id"] = "random_synthetic_s200"
            r["config"]["synthetic"]["budget_per_class"] = 200
            r["strategy_log"]["synthetic_examples"] *= 4
            r["metrics"]["balanced_accuracy"]["value"] -= 0.01
            more.append(r)
    records += more
    by = figures.sorted_by_strategy(records)
    assert figures._curves(by) == {"random_synthetic": ["real_only", "random_synthetic", "random_synthetic_s200"]}
    fig = figures.frontier_figure(records, "balanced_accuracy", figures.colours(by))
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label().startswith("random_synthetic (")]
    assert len(lines) == 1
    xs, ys = lines[0].get_data()
    mean = lambda s, f: float(np.mean([f(r) for r in by[s]]))  # noqa: E731
    assert list(xs) == pytest.approx([0.0, mean("random_synthetic", lambda r: r["strategy_log"]["synthetic_examples"]),
                                      mean("random_synthetic_s200", lambda r: r["strategy_log"]["synthetic_examples"])])
    assert ys[0] == pytest.approx(mean("real_only", lambda r: r["metrics"]["balanced_accuracy"]["value"]))
    labels = {t.get_text() for t in fig.legends[0].get_texts()}  # one legend, outside the axes
    assert "random_synthetic (2 synthetic budgets)" in labels and any(t.startswith("smote (n=") for t in labels)
    assert not any(t.startswith("random_synthetic_s200 (n=") for t in labels)  # on the line, not a lone point


class Overview(HTMLParser):
    """The summary table at the top of index.html: its rows, each {"family", "dataset", "budget", "method",
    "cells": {data-reference: (text, classes)}}, and the position of the table in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.inside = False
        self.before_sections = False  # the table came before the first <section>
        self._sections = 0
        self._cell: tuple[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._sections += 1
        elif tag == "table" and a.get("class") == "overview":
            self.inside, self.before_sections = True, self._sections == 0
        elif self.inside and tag == "tr" and a.get("data-family"):
            self.rows.append({"family": a["data-family"], "dataset": a["data-dataset"], "budget": a["data-budget"],
                              "method": a["data-method"], "cells": {}})
        elif self.inside and tag == "td" and a.get("data-reference"):
            self._cell, self._text = (a["data-reference"] or "", a.get("class") or ""), []
        elif self._cell and tag == "br":
            self._text.append(" ")

    def handle_data(self, data: str) -> None:
        if self._cell:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell:
            self.rows[-1]["cells"][self._cell[0]] = ("".join(self._text).strip(), self._cell[1])
            self._cell = None
        elif tag == "table":
            self.inside = False


def test_the_summary_table_comes_first_with_the_methods_verdicts(built: tuple[Path, Path]) -> None:
    """index.html opens with one table: a row per family, data set and budget, and method strategy, a column
    per reference holding the method's verdict (bench.stats's words, Δ and CI), coloured by the verdict, and
    the power check; every family of the results is in it."""
    root, out = built
    table = Overview()
    table.feed((out / "index.html").read_text(encoding="utf-8"))
    assert table.rows and table.before_sections
    groups = leaderboard.collect(root)
    families = paired.compare(groups)
    expected = set()
    for (suite, version, preset, dataset, budget), records in groups.items():
        methods = {r.strategy for r in map(Result.of, records) if is_method(r)} or {""}
        expected |= {(f"{suite}-v{version}-{preset}", dataset, budget_segment(budget), m) for m in methods}
    assert sorted((r["family"], r["dataset"], r["budget"], r["method"]) for r in table.rows) == sorted(expected)
    assert {r["family"] for r in table.rows} == {f"{s}-v{v}-{p}" for s, v, p in families}
    rows = {(r["family"], r["dataset"], r["budget"], r["method"]): r["cells"] for r in table.rows}
    checked = 0
    for (suite, version, preset), comps in families.items():
        for c in comps:
            key = (f"{suite}-v{version}-{preset}", c.dataset, budget_segment(c.budget), c.strategy)
            if key not in rows or c.reference not in rows[key]:
                continue  # not a method, or against its control's variant (bench.stats.control_pairs): no column
            text, classes = rows[key][c.reference]
            assert text == f"{paired.verdict_text(c)} {paired.delta_text(c)}", key
            assert c.verdict.replace(" ", "-") in classes.split(), key  # coloured by the verdict
            checked += 1
    assert checked >= 4  # active_synthesis and active_synthesis_bo vs real_only and random_synthetic (transactions)
    # The power check: "not run" exactly where the family's data set and budget has no positive control.
    with_positive = {(f"{s}-v{v}-{p}", d, budget_segment(b)) for (s, v, p, d, b), records in groups.items()
                     if any(paired.control_role(Result.of(r).strategy) == "positive" for r in records)}
    assert with_positive  # the tabular suites' v3 results run oracle_real
    for (family, dataset, budget, _), cells in rows.items():
        assert cells["power"][0].startswith("not run") == ((family, dataset, budget) not in with_positive), family
    assert 'class="overview"' in (out / "index.html").read_text().split("<section", 1)[0]


def test_every_table_scrolls_sideways(built: tuple[Path, Path]) -> None:
    text = (out := built[1] / "index.html").read_text(encoding="utf-8")
    assert text.count("<table") == text.count('<div class="scroll"><table') > 0, out
    assert "div.scroll{overflow-x:auto" in text


def test_one_colour_per_strategy_across_the_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """figures.colours is the one mapping (references first, then sorted ids, no colour twice), and the
    report hands every figure the same mapping, built from every strategy of the site."""
    names = ["smote", "real_only", "active_synthesis", "random_synthetic", "loop_real_only", "dp_gan",
             *(f"variant_{i}" for i in range(30))]
    mapping = figures.colours(names)
    assert list(mapping)[:3] == ["real_only", "random_synthetic", "loop_real_only"]
    assert len(set(mapping.values())) == len(names)  # 36 strategies, 36 colours
    assert figures.colours(reversed(names)) == mapping  # the order of the input does not matter
    assert figures.colours(["smote", "real_only"])["real_only"] == mapping["real_only"]
    seen: list[dict] = []
    spy = lambda *a, **k: seen.append(next(x for x in (*a, *k.values()) if isinstance(x, dict) and "real_only" in x))  # noqa: E731
    for name in ("frontier_figure", "budget_figure", "uncertainty_figure", "cost_figure"):
        monkeypatch.setattr(figures, name, spy)  # records the colours each figure gets; draws nothing
    root = copy_results(tmp_path / "results")
    report.build(root, tmp_path / "site")
    strategies = {r["cell"]["strategy"] for rs in leaderboard.collect(root).values() for r in rs}
    assert len(seen) >= 4 and all(m == figures.colours(strategies) for m in seen)


def _legend_figures() -> list:
    """The figures with a legend, drawn from the committed pneumoniamnist results."""
    groups = {k[3:]: rs for k, rs in leaderboard.collect(RESULTS / "pneumoniamnist").items() if k[2] == "frontier"}
    records = [Result.of(r) for rs in groups.values() for r in rs]
    colours = figures.colours({r.strategy for r in records})
    comps = paired.compare({("pneumoniamnist", 2, "frontier", *g): rs for g, rs in groups.items()})
    comps = next(iter(comps.values()))
    first = next(iter(groups.values()))
    rows = figures.costs(groups, comps, "cpu_hours", "real_only")
    return [figures.frontier_figure(first, "balanced_accuracy", colours),
            figures.budget_figure(groups, "balanced_accuracy", colours),
            figures.uncertainty_figure([Result.of(r) for r in first], colours),
            figures.cost_figure(rows, "CPU hours", colours)]


def test_no_legend_covers_an_axes() -> None:
    """Every legend lies outside every axes of its figure (drawn at render time); the shaded mean ± SD of
    validation accuracy stays within [0, 1]."""
    import matplotlib

    drawn = [f for f in _legend_figures() if f is not None]
    assert len(drawn) == 4
    for fig in drawn:
        with matplotlib.rc_context(figures.RC):
            fig.draw_without_rendering()
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        assert legends, fig
        for legend in legends:
            box = legend.get_window_extent()
            for ax in fig.axes:
                a = ax.get_window_extent()
                apart = box.x0 >= a.x1 or box.x1 <= a.x0 or box.y0 >= a.y1 or box.y1 <= a.y0
                assert apart, (ax.get_title(), box, a)
        for ax in fig.axes:
            if ax.get_ylabel() == "validation accuracy":
                ys = np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])
                assert ys.min() >= 0.0 and ys.max() <= 1.0


def test_costs_count_charged_cpu_seconds_not_wall_time() -> None:
    cell = lambda **compute: Result.of({"compute": compute})  # noqa: E731
    assert cell(wall_seconds=7200.0, cpu_seconds=1800.0).cost_hours("cpu_hours") == 0.5
    assert cell(wall_seconds=7200.0, cpu_seconds=1800.0, charged_cpu_seconds=3600.0).cost_hours("cpu_hours") == 1.0
    assert cell(cpu_seconds=1.0, gpu_hours=0.25).cost_hours("gpu_hours") == 0.25
    assert cell(cpu_seconds=1.0).shared_fit_hours is None
    assert cell(cpu_seconds=1.0, generator_fit_cpu_seconds=1800.0).shared_fit_hours == 0.5


def test_identical_models_and_budgets_are_told_as_they_are(built: tuple[Path, Path]) -> None:
    """A loop that returned round 0 in every seed is flagged as the real-data model; the frontier preset's
    description names its budgets, not the cpu preset's one."""
    root, out = built
    page = parse(out / "index.html")
    assert "50/100/200 real images per class" in page.descriptions["pneumoniamnist-v2-frontier"]
    assert "50 real images per class" in page.descriptions["pneumoniamnist-v2-cpu"]
    assert suite_description("pneumoniamnist", 2, [50, 100, 200]).startswith("PneumoniaMNIST with 50/100/200 real")
    flagged = {(section, s) for section, rows in page.cells.items() for s, cells in rows.items()
               if any("identical to the real-data model" in c for c in cells)}
    expected = set()
    for (suite, version, preset, _, _), rs in leaderboard.collect(root).items():
        for s, mine in figures.sorted_by_strategy(figures.ok_results(rs)).items():
            if all(paired.loop_round(r) == 0 for r in mine):
                expected.add((f"{suite}-v{version}-{preset}", s))
    assert flagged == expected
    loop = lambda k: Result.of({"strategy_log": {"returned_round": k}})  # noqa: E731
    assert "identical to the real-data model: round 0 returned in all 2 seeds" in _strategy_cell("x", [loop(0), loop(0)])
    assert "flag" not in _strategy_cell("x", [loop(0), loop(2)]) and "flag" not in _strategy_cell("real_only", [])


def test_the_secondary_columns_are_the_metrics_summary_ranks() -> None:
    """The summary table's secondary metrics: those whose capabilities declare a `summary` rank, in rank
    order, never the primary metric, at most N_SECONDARY; a metric the registry does not know is none."""
    directions = {"nll": False, "macro_f1": True, "accuracy": True, "balanced_accuracy": True, "not_installed": True}
    assert secondary_metrics(directions, "balanced_accuracy") == ["accuracy", "macro_f1", "nll"]
    assert secondary_metrics(directions, "accuracy") == ["balanced_accuracy", "macro_f1", "nll"]
    assert secondary_metrics({"not_installed": True, "nll": False}, "accuracy") == ["nll"]


@pytest.mark.parametrize("case", ["missing", "empty", "out_is_file"])
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, out = tmp_path / "results", tmp_path / "site"
    if case != "missing":
        results.mkdir()
    if case == "out_is_file":
        shutil.copytree(RESULTS / "pneumoniamnist" / "v2" / "cpu" / "pneumoniamnist" / "n50" / "real_only",
                        results / "pneumoniamnist" / "v2" / "cpu" / "pneumoniamnist" / "n50" / "real_only")
        out.write_text("a file")
    assert main(["report", "--results", str(results), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench: error: ")
    expected = {"missing": "does not exist", "empty": "no results under", "out_is_file": "is a file"}[case]
    assert expected in err
    assert case == "out_is_file" or not out.exists()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium or chromium-browser on PATH (Debian/Ubuntu: apt-get install chromium): "
                "the headless-browser check of the report is skipped")


def test_the_page_loads_in_a_headless_browser(built: tuple[Path, Path], tmp_path: Path) -> None:
    binary = _chromium()
    _, out = built
    site = tmp_path / "site"
    shutil.copytree(out, site)
    flags = [binary, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
    run = subprocess.run([*flags, (site / "index.html").as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "<h1>Active synthesis benchmark: report</h1>" in run.stdout
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]  # the page's console messages
    assert not console, console
    # Whether each image loaded is not in the dumped DOM: a copy of the page beside it (same relative
    # paths) with a script that, at the load event, marks the images that did not decode.
    probe = ('<script>addEventListener("load", () => { const bad = [...document.images].filter('
             'i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")); '
             'document.body.dataset.images = document.images.length; '
             'document.body.dataset.broken = JSON.stringify(bad); '
             'const t = document.querySelector("table.overview"); '  # the summary table is drawn, not hidden
             'document.body.dataset.summary = t ? t.getBoundingClientRect().height : 0; });</script></body>')
    (site / "probe.html").write_text((site / "index.html").read_text().replace("</body>", probe))
    run = subprocess.run([*flags, (site / "probe.html").as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    body = Page()
    attrs: dict[str, str | None] = {}
    body.handle_starttag = lambda tag, a: attrs.update(a) if tag == "body" else None  # type: ignore[method-assign]
    body.feed(run.stdout)
    assert attrs.get("data-images") == str(len(parse(out / "index.html").sources))
    assert json.loads(attrs.get("data-broken") or "null") == []
    assert float(attrs.get("data-summary") or 0) > 0
