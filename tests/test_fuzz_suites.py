"""Property-based test of the validation rule: whatever `bench validate` accepts runs, and whatever would
fail or mean nothing is refused before any work. Suite files are drawn from the schema, with values at
and beyond every declared bound (of the recipe, the budgets, the model, the generator, the data set and
the strategies) and a few hostile YAML forms; for each one, either `bench validate` refuses it (exit 2,
one line on stderr, no traceback), or `bench run` completes its first cell with status ok on a tiny
in-code data set (toy_pockets), within a time limit, writing nothing outside `--out`.

Derandomized (a fixed sequence of examples) and bounded, so it runs in the default `-m "not slow"`
selection; `FUZZ_EXAMPLES=500 pytest tests/test_fuzz_suites.py` explores further. Expensive fields
(epochs, budgets, synthetic budgets) are drawn at their small valid values and beyond their bounds,
never at a valid but huge value: the test checks validation, not speed."""
from __future__ import annotations

import _thread
import contextlib
import io
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
RUN_LIMIT = 120  # seconds a whole `bench run` of one example may take (a cell takes about one)
INF, NAN = math.inf, math.nan

BASE: dict[str, Any] = {
    "name": "fuzz",
    "version": 1,
    "primary_metric": "accuracy",
    "datasets": [{"name": "toy_pockets", "params": {"train_per_class": 12, "test_per_class": 10}}],
    "budgets": [3],
    "val_per_class": 2,
    "model": {"name": "mlp", "params": {"hidden": [8]}},
    "train": {"epochs": 1, "batch_size": 16},
    "synthetic": {"generator": {"name": "toy_pockets_oracle", "params": {}}, "budget_per_class": 2},
    "strategies": ["real_only"],
    "metrics": ["accuracy"],
    "seeds": [0],
}
LOOP = {"passes": 2, "pool_size": 20, "max_rounds": 1, "round_epochs": 1}  # a short active loop

PROBABILITY = [0.0, 0.5, 0.999, 1.0, 1.5, -0.5, NAN, INF]
RATE = [1e-6, 0.01, 0.0, -1.0, INF, -INF, NAN, 1e30]
COUNT = [1, 2, 0, -1, 2.5, "abc", True, None]

# (dotted path, the values drawn for it); a path into a list names the entry's index.
FIELDS: list[tuple[str, list[Any]]] = [
    ("version", [1, 2, 0, -1, True, "1", 2**70, 1.5, 2**31 - 1, 2**31]),
    ("train.lr", [1e-4, 10.0, 10.5, *RATE]),
    ("train.weight_decay", [0.0, 1.0, 1.5, *RATE]),
    ("train.batch_size", [1, 2**20, 2**20 + 1, 10**12, 0, -1, 2.5]),
    ("train.eval_batch_size", [1, 2**20 + 1, 10**12, 0]),
    ("train.epochs", [1, 2, 0, -1, 10**12, 1.5]),
    ("train.select_from", PROBABILITY),
    ("train.warmup", PROBABILITY),
    ("train.label_smoothing", PROBABILITY),
    ("train.swa_start", PROBABILITY),
    ("train.early_stopping_patience", [None, 1, 0, -1]),
    ("val_per_class", [1, 2, 9, 11, 12, 0, -1]),
    ("test_per_class", [None, 1, 10, 11, 0]),
    ("budgets", [[1], [9], [10], [11], ["all"], ["100%"], ["50%"], ["10%", "10.0%"], [3, 3], ["100%", "all"],
                 ["0.0001%"], ["1%"], ["0%"], ["101%"], [0], [], ["abc"], [3, "all", "50%"]]),
    ("seeds", [[0], [0, 1], [0, 0], [2**32 - 1], [2**32], [-1], [], [1.5], ["0"]]),
    ("datasets", [[], [BASE["datasets"][0]] * 2, ["toy_pockets"], [{"name": "toy_pocket"}],
                  [{"name": "toy_pockets", "params": {"train_per_class": 12, "test_per_class": 10,
                                                      "data_dir": "/etc"}}]]),
    ("datasets.0.params.train_per_class", [1, 2, 3, 4, 5, 12, *COUNT]),
    ("datasets.0.params.test_per_class", [1, *COUNT]),
    ("datasets.0.params.rare", PROBABILITY),
    ("datasets.0.params.seed", [0, -1, 2**32, "x"]),
    ("model.params.hidden", [[], [1], [8, 8], [0], [-4], [2.5], "8", [10**9]]),
    ("model.params.dropout", PROBABILITY),
    ("model.params.depth", [2]),
    ("synthetic.budget_per_class", [1, 2, 0, -1, 10**9, 100_000, 100_001]),
    ("synthetic.mix_ratio", PROBABILITY),
    ("synthetic.generator.params.candidates", [1, 64, 0, -3, 2.5]),
    ("synthetic.generator.params.bandwidth", [1e-3, 1.0, 0.0, -1.0, NAN, INF]),
    ("synthetic.generator.params.rare", PROBABILITY),
    ("strategies", [["real_only"], ["real_only", "real_only"], [{"name": "random_synthetic", "params": LOOP}],
                    [{"name": "smote", "params": {"k_neighbors": 1}}], [{"name": "smote", "params": {"k_neighbors": 0}}],
                    [{"name": "active_synthesis", "params": {**LOOP, "tau": 1.5}}],
                    [{"name": "active_synthesis", "params": {**LOOP, "strength": NAN}}],
                    [{"name": "active_synthesis", "params": {**LOOP, "passes": 0}}],
                    [{"name": "random_synthetic", "params": {**LOOP, "kl_weight": -1.0}}]]),
    ("cell_timeout", [None, 100.0, 0.0, -5.0, INF, NAN]),
]
# Hostile YAML forms, written as text in place of a line of the base file.
TEXT = [
    ("version: 1", "version: !!float 1"),
    ("version: 1", "version: !!str 1"),
    ("seeds:\n- 0", "seeds: !!set {0: null, 1: null}"),
    ("name: fuzz", "name: !!binary Zm9v"),
    ("name: fuzz", "name: !!python/object/apply:os.getcwd []"),
    ("name: fuzz", "name: 2024-01-01"),
    ("version: 1", "version: 0x1"),
]


def set_path(tree: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        tree = tree[int(key)] if isinstance(tree, list) else tree[key]
    if isinstance(tree, list):
        tree[int(last)] = value
    else:
        tree[last] = value


@st.composite
def suite_texts(draw: st.DrawFn) -> str:
    """A suite file: the base with one to three fields set to drawn values, sometimes one hostile line."""
    tree = json.loads(json.dumps(BASE))
    chosen = draw(st.lists(st.sampled_from(range(len(FIELDS))), min_size=1, max_size=3, unique=True))
    for i in sorted(chosen):  # a whole list (datasets) before a path into it
        path, values = FIELDS[i]
        value = draw(st.sampled_from(values))
        try:
            set_path(tree, path, json.loads(json.dumps(value)) if isinstance(value, (list, dict)) else value)
        except (IndexError, KeyError, TypeError):  # the list it points into was emptied or replaced
            pass
    text = yaml.safe_dump(tree, sort_keys=False)
    if draw(st.integers(0, 5)) == 0:
        old, new = draw(st.sampled_from(TEXT))
        text = text.replace(old, new, 1)
    return text


def call(argv: list[str], limit: float) -> tuple[int, str, bool]:
    """`bench ARGV` in this process: (exit code, stderr, whether it ran past `limit` seconds and was
    interrupted). Cells keep their own time limit (--cell-timeout); the watchdog catches a hang elsewhere."""
    err = io.StringIO()
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(limit, interrupt)
    timer.start()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except KeyboardInterrupt:
        code = 130
    finally:
        timer.cancel()
    return code, err.getvalue(), fired.is_set()


def check(text: str, folder: Path) -> None:
    """The property, for one suite file."""
    folder.mkdir(parents=True)
    suite = folder / "suite.yaml"
    suite.write_text(text)
    code, err, hung = call(["validate", str(suite)], RUN_LIMIT)
    assert not hung, f"bench validate hung on:\n{text}"
    assert "Traceback" not in err, err
    if code != 0:
        assert code == 2, (code, err)
        assert err.startswith("bench: error: ") and err.count("\n") == 1, err
        return
    out = folder / "out"
    old = Path.cwd()
    os.chdir(folder)
    try:
        code, err, hung = call(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--device", "cpu",
                                "--cell-timeout", str(RUN_LIMIT / 2)], RUN_LIMIT)
    finally:
        os.chdir(old)
    assert not hung, f"bench run hung on a suite that bench validate accepted:\n{text}"
    assert "Traceback" not in err, err
    results = sorted(out.rglob("seed*.json"))
    assert results, f"bench run wrote no result (exit {code}: {err.strip()}) for a suite bench validate accepted:\n{text}"
    first = json.loads(results[0].read_text())
    assert first["status"] == "ok", (f"the cell of a suite bench validate accepted failed: "
                                     f"{first['error']['type']}: {first['error']['message']}\n{text}")
    assert code == 0, (code, err)
    assert sorted(p.name for p in folder.iterdir()) == ["out", "suite.yaml"]  # nothing outside --out


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(text=suite_texts())
def test_what_validate_accepts_runs_and_what_it_refuses_is_one_line(tmp_path_factory, text):
    check(text, tmp_path_factory.mktemp("fuzz") / "example")


def test_the_base_suite_runs(tmp_path):
    """The base the fuzz test mutates is valid and runs, so every refusal comes from a drawn value."""
    check(yaml.safe_dump(BASE, sort_keys=False), tmp_path / "base")


@pytest.mark.parametrize("path,values", FIELDS, ids=[f[0] for f in FIELDS])
def test_every_drawn_path_exists_in_the_base(path, values):
    tree = json.loads(json.dumps(BASE))
    set_path(tree, path, values[0])
