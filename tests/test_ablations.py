"""The adult ablation suite (benchmarks/suites/adult-ablations.yaml) and the report's one-parameter sweeps
(bench.report.figures.sweeps and sweep_figure): the suite has one cell per variant, each changing one
parameter of the base; sweeps are found from the recorded parameters; the report draws their figure."""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_stats import put, record

from bench import report
from bench.cells import expand_cells
from bench.config import config_hash, load_suite
from bench.errors import SuiteWarning
from bench.report import figures
from bench.results import Result

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "adult-ablations.yaml"
BASE = "active_synthesis"
# Each variant id -> the one parameter it changes and its value (the base: tau 0.8, mix 0.5, ensemble).
VARIANTS = {**{f"active_tau{t}": ("tau", t) for t in (0.5, 0.7, 0.9, 0.95)},
            **{f"active_mix{m}": ("mix_ratio", m) for m in (0.1, 0.3, 0.7, 0.9)},
            "active_mc_dropout": ("uncertainty", "mc_dropout")}


def cells_of_suite() -> dict[str, dict]:
    """Strategy id -> the config of its one cell (seed 0). The variants differ from loop_real_only in more
    than the targeting by design: the suite's SuiteWarnings are expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteWarning)
        cells = expand_cells(load_suite(str(SUITE), seeds=[0]))
    ids = [c.strategy.key for c in cells]
    assert len(ids) == len(set(ids)), "a strategy id appears twice: duplicate cells"
    return {c.strategy.key: c.config for c in cells}


def test_suite_validates_with_one_cell_per_variant_each_changing_one_parameter() -> None:
    suite = load_suite(str(SUITE))
    assert (suite.name, suite.version, suite.primary_metric) == ("adult-ablations", 1, "balanced_accuracy")
    assert suite.seeds == [0, 1, 2, 3, 4] and suite.equivalence_margin == 1.0
    configs = cells_of_suite()
    assert set(configs) == {"real_only", "loop_real_only", "random_synthetic", "oracle_real", BASE, *VARIANTS}
    base = configs[BASE]["strategy"]["params"]
    assert (base["tau"], base["uncertainty"], configs[BASE]["synthetic"]["mix_ratio"]) == (0.8, "ensemble", 0.5)
    for sid, (key, value) in VARIANTS.items():
        params = configs[sid]["strategy"]["params"]
        assert configs[sid]["strategy"]["name"] == BASE
        assert {k for k in base if params[k] != base[k]} == {key}, sid
        assert params[key] == value
    # guidance off: random_synthetic and the loop reference run the base's loop parameters
    for control in ("random_synthetic", "loop_real_only", "oracle_real"):
        params = configs[control]["strategy"]["params"]
        assert {k: params[k] for k in ("tau", "uncertainty", "members", "pool_size", "max_rounds")} == \
            {k: base[k] for k in ("tau", "uncertainty", "members", "pool_size", "max_rounds")}
    assert configs["random_synthetic"]["synthetic"] == configs[BASE]["synthetic"]


def cell(strategy: str, seed: int, value: float, name: str | None, params: dict | None = None,
         mix: float | None = 0.5) -> dict:
    """A result record (tests/test_stats.py's `record`) of a cell that ran registered strategy `name` with
    `params` (and a synthetic section mixing `mix`), its config hash recomputed."""
    r = record(strategy, seed, value, metric="balanced_accuracy", suite="ablate")
    if name is not None:
        r["config"]["strategy"] = {"id": strategy, "name": name, "params": params or {}}
        r["config"]["synthetic"] = None if mix is None else {"budget_per_class": 200, "mix_ratio": mix}
    r["config_hash"] = config_hash(r["config"])
    return r


BASE_PARAMS = {"tau": 0.8, "mix_ratio": None, "uncertainty": "ensemble", "passes": 50}


def records(seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict]:
    """Base (tau 0.8, mix None = the suite's 0.5), tau 0.5 and 0.95, mix 0.1, and the references."""
    out = []
    for k in seeds:
        e = 0.01 * k  # a seed effect
        out += [cell("real_only", k, 0.70 + e, "real_only"),
                cell("loop_real_only", k, 0.71 + e, "loop_real_only", BASE_PARAMS, mix=None),
                # as an older record without `passes`: active_synthesis's registered default (50) fills it in
                cell(BASE, k, 0.75 + e, BASE, {"tau": 0.8, "mix_ratio": None, "uncertainty": "ensemble"}),
                cell("active_tau0.5", k, 0.72 + e, BASE, {**BASE_PARAMS, "tau": 0.5}),
                cell("active_tau0.95", k, 0.74 + e, BASE, {**BASE_PARAMS, "tau": 0.95}),
                cell("active_mix0.1", k, 0.73 + e, BASE, {**BASE_PARAMS, "mix_ratio": 0.1}, mix=0.1)]
    return out


def test_sweeps_found_from_recorded_parameters_with_the_base_included() -> None:
    found = figures.sweeps([Result.of(r) for r in records()])
    assert [(s.name, s.key, s.base) for s in found] == [(BASE, "mix_ratio", BASE), (BASE, "tau", BASE)]
    mix, tau = found
    assert mix.points == ((0.1, "active_mix0.1"), (0.5, BASE))  # the base's None is the suite's mix
    assert tau.points == ((0.5, "active_tau0.5"), (0.8, BASE), (0.95, "active_tau0.95"))
    assert mix.numeric and tau.numeric
    # Without the registered defaults the base (no `passes` recorded) differs from every variant in two keys:
    # it is in no sweep (tau 0.5 and 0.95 are then one of their own, about another base)
    assert all(BASE not in {s for _, s in sw.points} for sw in figures.sweeps(records(), lambda name: {}))


def test_sweeps_of_categories_and_the_registered_defaults() -> None:
    rs = records() + [cell("active_mc_dropout", k, 0.74, BASE, {**BASE_PARAMS, "uncertainty": "mc_dropout"})
                      for k in (0, 1, 2)]
    found = {s.key: s for s in figures.sweeps(rs)}
    assert set(found) == {"mix_ratio", "tau", "uncertainty"}
    assert found["uncertainty"].points == (("ensemble", BASE), ("mc_dropout", "active_mc_dropout"))
    assert not found["uncertainty"].numeric
    assert figures.strategy_defaults(BASE)["tau"] == 0.8 and figures.strategy_defaults("no_such_strategy") == {}


def test_sweeps_of_the_suite_cells_are_its_three_parameters() -> None:
    rs = [cell(sid, 0, 0.7, c["strategy"]["name"], c["strategy"]["params"],
               mix=(c["synthetic"] or {}).get("mix_ratio")) for sid, c in cells_of_suite().items()]
    found = {s.key: s for s in figures.sweeps(rs)}
    assert set(found) == {"tau", "mix_ratio", "uncertainty"} and {s.base for s in found.values()} == {BASE}
    assert [v for v, _ in found["tau"].points] == [0.5, 0.7, 0.8, 0.9, 0.95]
    assert [v for v, _ in found["mix_ratio"].points] == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert [v for v, _ in found["uncertainty"].points] == ["ensemble", "mc_dropout"]


def test_the_report_draws_the_sweep_figure(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for r in records():
        put(root, r)
    written = report.build(root, tmp_path / "site")
    svgs = [p for p in written if p.name.endswith("-sweeps.svg")]
    assert len(svgs) == 1
    text = svgs[0].read_text()
    ET.fromstring(text)  # well-formed SVG
    for label in ("tau sweep", "mix_ratio sweep", "active_tau0.95", "real_only", "loop_real_only"):
        assert label in text
    assert f'src="figures/{svgs[0].name}"' in (tmp_path / "site" / "index.html").read_text()


def test_no_sweep_figure_without_a_sweep() -> None:
    rs = records()
    palette = figures.colours({Result.of(r).strategy for r in rs})
    assert figures.sweep_figure(rs, "balanced_accuracy", palette, found=[]) is None
    references = [r for r in rs if Result.of(r).strategy in ("real_only", "loop_real_only")]
    assert figures.sweep_figure(references, "balanced_accuracy", palette) is None


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_sweep_figure_draws_with_one_seed_or_several(seeds: tuple[int, ...]) -> None:
    rs = records(seeds)
    fig = figures.sweep_figure(rs, "balanced_accuracy", figures.colours({Result.of(r).strategy for r in rs}),
                               figures.sweeps(rs))
    assert fig is not None and len(fig.axes) == 2
    assert figures.svg(lambda: fig) is not None
