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
from bench.report.page import secondary_metrics
from bench.results import iter_results

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
    assert page.rows["transactions-v2-cpu"]["real_only"]["verdict"] == "reference"
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
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert "random_synthetic (2 synthetic budgets)" in labels and any(t.startswith("smote (n=") for t in labels)
    assert not any(t.startswith("random_synthetic_s200 (n=") for t in labels)  # on the line, not a lone point


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
             'document.body.dataset.broken = JSON.stringify(bad); });</script></body>')
    (site / "probe.html").write_text((site / "index.html").read_text().replace("</body>", probe))
    run = subprocess.run([*flags, (site / "probe.html").as_uri()], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    body = Page()
    attrs: dict[str, str | None] = {}
    body.handle_starttag = lambda tag, a: attrs.update(a) if tag == "body" else None  # type: ignore[method-assign]
    body.feed(run.stdout)
    assert attrs.get("data-images") == str(len(parse(out / "index.html").sources))
    assert json.loads(attrs.get("data-broken") or "null") == []
