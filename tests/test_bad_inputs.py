"""A battery of bad inputs through the real command line (`bench.cli.main`): each is exit code 2, one
line on stderr, no traceback, and no existing result file lost or changed. Then the faults that hit a
run after its cells are computed (a write that fails, a strategy that exits, hangs or logs a set, a
damaged result, orphaned temporary files): each cell still ends as a result, and the run goes on."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from tiny_suite import GOOD, TOY_SYNTHETIC

from bench.api import StrategyResult
from bench.cli import main
from bench.config import MAX_SUITE_BYTES, config_hash, read_suite_file
from bench.errors import BenchError
from bench.registry import STRATEGIES
from bench.results import cell_path, clean_stale_temp_files, iter_results, write_result
from bench.runner import LOCK_FILE

# The classic "billion laughs": 1.2 KB of YAML whose aliases expand to 9**9 (387 million) strings.
BOMB = GOOD + 'lol0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"lol{i}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for i, (p, c) in enumerate(zip("abcdefgh", "bcdefghi"), 1))


def record(seed: int = 0) -> dict:
    """A valid result record of suite t's real_only cell."""
    return {
        "schema_version": 1,
        "suite": {"name": "t", "version": 1, "preset": "cpu", "primary_metric": "accuracy"},
        "cell": {"dataset": "cifar10", "budget": 2, "strategy": "real_only", "seed": seed},
        "config": {"seed": seed}, "config_hash": config_hash({"seed": seed}), "status": "ok", "error": None,
        "metrics": {"accuracy": {"value": 0.5, "higher_is_better": True}}, "strategy_log": {},
        "compute": {"wall_seconds": 1.0, "cpu_seconds": 1.0, "cpu_hours": 1 / 3600, "peak_rss_bytes": 2**20,
                    "peak_rss_scope": "cell", "device": "cpu", "gpu_peak_memory_bytes": None, "gpu_hours": None},
        "code": {"git_commit": None, "git_dirty": None, "package_version": "0.1.0"},
        "packages": {}, "hardware": {}, "created_at": "2026-01-01T00:00:00+00:00",
    }


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below `root` with its bytes, but the lock a run holds on its output folder (bench.runner:
    an empty or pid-holding file that stays by design, so that two runs never race for it)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != LOCK_FILE}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace: results/ with one valid result and a LEADERBOARD.md, both of which every bad input
    must leave exactly as they are."""
    out = tmp_path / "results"
    write_result(cell_path(out, "t", 1, "cpu", "cifar10", 2, "real_only", 0), record())
    (tmp_path / "LEADERBOARD.md").write_text("# Leaderboard\n")
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "folder.yaml").mkdir()
    return tmp_path


def suite_file(ws: Path, content: str | bytes, name: str = "suite.yaml") -> str:
    p = ws / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(p)


def run_args(ws: Path, content: str | bytes, *extra: str) -> list[str]:
    return ["run", "--suite", suite_file(ws, content), "--out", str(ws / "results"), "--quiet", *extra]


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def read_only_fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """What writing on a read-only file system raises (the tests run as root, which could write anyway)."""
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    def refuse_atomic(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(Path, "write_text", refuse)
    monkeypatch.setattr("bench.leaderboard.write_atomic", refuse_atomic)  # LEADERBOARD.md is written atomically


# (id, argv made in the workspace, what stderr must say).
Case = tuple[str, Callable[[Path], list[str]], str]
CASES: list[Case] = [
    # Path traversal: names that become folders of the results.
    ("suite name ../../x", lambda ws: run_args(ws, edit("name: t", "name: ../../x")), "'../../x' is not a safe name"),
    ("absolute suite name", lambda ws: run_args(ws, edit("name: t", "name: /tmp/evil")), "is not a safe name"),
    ("suite name with a space", lambda ws: run_args(ws, edit("name: t", "name: my suite")), "is not a safe name"),
    ("strategy id ../../x",
     lambda ws: run_args(ws, edit("strategies: [real_only]", "strategies: [{name: real_only, id: ../../x}]")),
     "strategies.0.id: Value error, '../../x' is not a safe name"),
    ("dataset name ../cifar10", lambda ws: run_args(ws, edit("datasets: [cifar10]", "datasets: [../cifar10]")),
     "is not a safe name"),
    ("metric id a/b", lambda ws: run_args(ws, edit("metrics: [accuracy]", "metrics: [{name: accuracy, id: a/b}]")),
     "'a/b' is not a safe name"),
    ("preset ../../x", lambda ws: run_args(ws, GOOD + "presets: {'../../x': {}}\n", "--preset", "../../x"),
     "preset: Value error, '../../x' is not a safe name"),
    # The file itself.
    ("YAML alias bomb", lambda ws: run_args(ws, BOMB), "aliases expand to more than 100,000 YAML nodes"),
    ("recursive alias", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: &s [0, *s]")),
     "an alias refers to a node that contains it"),
    ("duplicate key", lambda ws: run_args(ws, GOOD + "seeds: [1]\n"),
     "line 13, column 1: duplicate key 'seeds' (first at line 12)"),
    ("binary garbage", lambda ws: run_args(ws, b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01garbage"),
     "is not UTF-8 text (byte 0x89 at offset 0)"),
    ("NUL character", lambda ws: run_args(ws, GOOD + "x: a\x00b\n"), "unacceptable character #x0000"),
    ("a file over 1 MB", lambda ws: run_args(ws, GOOD + "#" * MAX_SUITE_BYTES + "\n"),
     "is larger than 1,000,000 bytes"),
    ("nesting 5,000 deep", lambda ws: run_args(ws, GOOD + "x: " + "[" * 5000 + "]" * 5000 + "\n"), "nested too deeply"),
    ("unclosed bracket", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: [0")), "malformed YAML"),
    ("python object tag",
     lambda ws: run_args(ws, edit("name: t", 'name: !!python/object/apply:os.system ["touch pwned"]')),
     "the YAML tag !!python/object/apply:os.system is not allowed"),
    ("empty file", lambda ws: run_args(ws, ""), "must hold a mapping at its top level"),
    ("top-level list", lambda ws: run_args(ws, "- name: t\n"), "must hold a mapping at its top level"),
    ("suite file missing", lambda ws: ["run", "--suite", str(ws / "none.yaml"), "--out", str(ws / "results")],
     "does not exist"),
    ("suite file is a folder", lambda ws: ["run", "--suite", str(ws / "folder.yaml"), "--out", str(ws / "results")],
     "is a folder, not a file"),
    ("unknown suite name", lambda ws: ["run", "--suite", "cifar100", "--out", str(ws / "results")],
     "unknown suite 'cifar100'"),
    # Values.
    ("seed 2**32", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: [4294967296]")), "seeds must be below 2**32"),
    ("--seeds 2**32", lambda ws: run_args(ws, GOOD, "--seeds", "0,4294967296"), "seed 4294967296 is too large"),
    ("negative seed", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: [-1]")),
     "seeds.0: Input should be greater than or equal to 0"),
    ("--seeds 0,x", lambda ws: run_args(ws, GOOD, "--seeds", "0,x"), "--seeds takes comma-separated integers"),
    ("no seeds", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: []")), "seeds: List should have at least 1 item"),
    ("width: wide", lambda ws: run_args(ws, edit("width: 4", 'width: "wide"')), "parameter width='wide'"),
    ("unknown model parameter", lambda ws: run_args(ws, edit("width: 4", "depth: 4")), "model 'small_cnn'"),
    ("version 0", lambda ws: run_args(ws, edit("version: 1", "version: 0")), "version: Input should be greater than 0"),
    ("version missing", lambda ws: run_args(ws, edit("version: 1\n", "")), "version: Field required"),
    ("unknown top-level key", lambda ws: run_args(ws, GOOD + "colour: red\n"),
     "colour: Extra inputs are not permitted"),
    ("negative learning rate", lambda ws: run_args(ws, edit("train: {epochs: 1}", "train: {epochs: 1, lr: -1}")),
     "train.lr: Input should be greater than 0"),
    ("strategy params not a mapping",
     lambda ws: run_args(ws, edit("strategies: [real_only]", "strategies: [{name: real_only, params: 5}]")),
     "strategies.0.params: Input should be a valid dictionary"),
    ("strategy parameter out of range",
     lambda ws: run_args(ws, edit("[real_only]", "[{name: active_synthesis, params: {tau: 2}}]")),
     "strategy 'active_synthesis'"),
    ("cell_timeout -5", lambda ws: run_args(ws, GOOD + "cell_timeout: -5\n"),
     "cell_timeout: Input should be greater than 0"),
    ("--cell-timeout 0", lambda ws: run_args(ws, GOOD, "--cell-timeout", "0"),
     "--cell-timeout takes a positive number of seconds"),
    ("--cell-timeout abc", lambda ws: run_args(ws, GOOD, "--cell-timeout", "abc"),
     "--cell-timeout takes a positive number of seconds"),
    ("unknown strategy", lambda ws: run_args(ws, edit("strategies: [real_only]", "strategies: [real_onyl]")),
     "Did you mean 'real_only'"),
    ("unknown metric", lambda ws: run_args(ws, edit("metrics: [accuracy]", "metrics: [accuracy, acuracy]")),
     "unknown metric 'acuracy'"),
    ("unknown dataset", lambda ws: run_args(ws, edit("datasets: [cifar10]", "datasets: [cifar11]")),
     "unknown dataset 'cifar11'"),
    ("primary metric not listed", lambda ws: run_args(ws, edit("primary_metric: accuracy", "primary_metric: ece")),
     "primary_metric 'ece' is not among the suite's metrics"),
    ("presets a list", lambda ws: run_args(ws, GOOD + "presets: [gpu]\n", "--preset", "gpu"),
     "`presets` must be a mapping"),
    ("preset not a mapping", lambda ws: run_args(ws, GOOD + "presets: {gpu: 5}\n", "--preset", "gpu"),
     "preset 'gpu' must be a mapping"),
    ("unknown preset", lambda ws: run_args(ws, GOOD, "--preset", "gpu"), "has no preset 'gpu'"),
    ("--device tpu", lambda ws: run_args(ws, GOOD, "--device", "tpu"), "invalid choice: 'tpu'"),
    ("--sd-path without sd generator", lambda ws: run_args(ws, GOOD, "--sd-path", str(ws)), "loads no model folder"),
    ("--lm-path without a text generator", lambda ws: run_args(ws, GOOD, "--lm-path", str(ws)),
     "is not a text generator with a model_path, so --lm-path does not apply"),
    # --set KEY=VALUE.
    ("--set without =", lambda ws: run_args(ws, GOOD, "--set", "nonsense"), "--set takes KEY=VALUE"),
    ("--set empty key", lambda ws: run_args(ws, GOOD, "--set", "=3"), "--set takes KEY=VALUE"),
    ("--set key with ..", lambda ws: run_args(ws, GOOD, "--set", "train..epochs=3"), "--set takes KEY=VALUE"),
    ("--set bad YAML", lambda ws: run_args(ws, GOOD, "--set", "seeds=[0"), "--set seeds: VALUE '[0' is not a YAML value"),
    ("--set missing section", lambda ws: run_args(ws, GOOD, "--set", "trian.epochs=3"),
     "--set trian.epochs: suite 't' [cpu] has no 'trian' at the top level"),
    ("--set missing list entry", lambda ws: run_args(ws, GOOD, "--set", "strategies.smote.params.k=3"),
     "strategies has no entry 'smote' (entries: real_only; or an index 0-0)"),
    ("--set index out of range", lambda ws: run_args(ws, GOOD, "--set", "seeds.3=1"), "seeds has 1 entry, no index 3"),
    ("--set below a number", lambda ws: run_args(ws, GOOD, "--set", "val_per_class.x=1"),
     "val_per_class is 1 (int), so it has no 'x'"),
    ("--set unknown field", lambda ws: run_args(ws, GOOD, "--set", "train.epoch=3"),
     "train.epoch: Extra inputs are not permitted"),
    ("--set bad value", lambda ws: run_args(ws, GOOD, "--set", "train.epochs=-1"),
     "train.epochs: Input should be greater than 0"),
    ("--set unknown parameter", lambda ws: run_args(ws, GOOD, "--set", "model.params.depth=2"), "model 'small_cnn'"),
    ("validate result --set", lambda ws: ["validate", suite_file(ws, "{}", "r.json"), "--set", "seeds=[1]"],
     "is a result: --set, --sd-path and --lm-path apply to a suite"),
    ("--out under a file", lambda ws: ["run", "--suite", suite_file(ws, GOOD), "--out", str(ws / "a-file" / "r")],
     "is not writable"),
    ("--data-dir missing", lambda ws: run_args(ws, GOOD, "--data-dir", str(ws / "no-data")), "does not exist"),
    # bench validate.
    ("validate a folder", lambda ws: ["validate", str(ws / "results")],
     "is a folder: `bench validate` checks one file"),
    ("validate a missing file", lambda ws: ["validate", str(ws / "none.json")], "does not exist"),
    ("validate a .txt", lambda ws: ["validate", suite_file(ws, GOOD, "suite.txt")],
     "expected a suite (.yaml) or a result (.json)"),
    ("validate result []", lambda ws: ["validate", suite_file(ws, "[]", "r.json")],
     "result does not match schema v1: (top level)"),
    ("validate binary result", lambda ws: ["validate", suite_file(ws, b"\xff\xfe\x00", "r.json")], "is not valid JSON"),
    ("validate deeply nested result", lambda ws: ["validate", suite_file(ws, "[" * 100_000 + "]" * 100_000, "r.json")],
     "nested too deeply"),
    ("validate schema-invalid result",
     lambda ws: ["validate", suite_file(ws, json.dumps({**record(), "status": "done"}), "r.json")],
     "status"),
    ("validate the alias bomb", lambda ws: ["validate", suite_file(ws, BOMB)], "alias bomb"),
    # bench leaderboard.
    ("leaderboard --output a folder",
     lambda ws: ["leaderboard", "--results", str(ws / "results"), "--output", str(ws / "results")],
     "is a folder: give the file to write"),
    ("leaderboard --output missing parent",
     lambda ws: ["leaderboard", "--results", str(ws / "results"), "--output", str(ws / "no" / "LB.md")],
     "does not exist"),
    ("leaderboard --results missing", lambda ws: ["leaderboard", "--results", str(ws / "none")], "does not exist"),
    ("leaderboard --results a file",
     lambda ws: ["leaderboard", "--results", str(ws / "a-file"), "--output", str(ws / "x.md")],
     "is not a folder"),
    # Commands and flags.
    ("ls widgets", lambda ws: ["ls", "widgets"], "invalid choice: 'widgets'"),
    ("unknown command", lambda ws: ["frobnicate"], "invalid choice: 'frobnicate'"),
]

def toy(old: str, new: str) -> str:
    assert old in TOY_SYNTHETIC, old
    return TOY_SYNTHETIC.replace(old, new)


# Issue 24: inputs that ran with silently wrong numbers, hung, ended in a traceback, or passed `bench validate`
# and then failed every cell. Each is now refused by `bench validate` and `bench run` before any work.
CASES += [
    # Silently wrong numbers.
    ("lr .inf", lambda ws: run_args(ws, edit("train: {epochs: 1}", "train: {epochs: 1, lr: .inf}")),
     "train.lr: Input should be a finite number"),
    ("weight_decay .inf", lambda ws: run_args(ws, edit("train: {epochs: 1}", "train: {epochs: 1, weight_decay: .inf}")),
     "train.weight_decay: Input should be a finite number"),
    ("lr 1e30", lambda ws: run_args(ws, edit("train: {epochs: 1}", "train: {epochs: 1, lr: 1.0e+30}")),
     "train.lr: Input should be less than or equal to 10"),
    ("batch_size 10**12", lambda ws: run_args(ws, edit("train: {epochs: 1}", "train: {epochs: 1, batch_size: 1000000000000}")),
     "train.batch_size: Input should be less than or equal to 1048576"),
    ("hidden [0]", lambda ws: run_args(ws, toy("hidden: [8]", "hidden: [0]")),
     "model 'mlp': parameter hidden=[0], entry 0: Input should be greater than or equal to 1"),
    ("generator candidates -3",
     lambda ws: run_args(ws, toy("params: {}}", "params: {candidates: -3}}")),
     "generator 'toy_pockets_oracle': parameter candidates=-3: Input should be greater than or equal to 1"),
    ("generator bandwidth .nan", lambda ws: run_args(ws, toy("params: {}}", "params: {bandwidth: .nan}}")),
     "generator 'toy_pockets_oracle': parameter bandwidth=nan: Input should be a finite number"),
    ("synthetic budget 10**9", lambda ws: run_args(ws, toy("budget_per_class: 2", "budget_per_class: 1000000000")),
     "synthetic.budget_per_class: Input should be less than or equal to 100000"),
    ("the same data set twice", lambda ws: run_args(ws, edit("datasets: [cifar10]", "datasets: [cifar10, cifar10]")),
     "datasets: Value error, each data set once, repeated: cifar10"),
    ("budgets [10, 10]", lambda ws: run_args(ws, edit("budgets: [2]", "budgets: [10, 10]")),
     "budgets: Value error, budgets must be unique, repeated: 10"),
    ("budgets 10% and 10.0%", lambda ws: run_args(ws, edit("budgets: [2]", "budgets: ['10%', '10.0%']")),
     "budgets must be unique, repeated: 10% (after normalising"),
    ("budgets 100% and all", lambda ws: run_args(ws, edit("budgets: [2]", "budgets: ['100%', all]")),
     "budgets must be unique, repeated: all (after normalising"),
    ("no data sets", lambda ws: run_args(ws, edit("datasets: [cifar10]", "datasets: []")),
     "datasets: List should have at least 1 item"),
    ("version true", lambda ws: run_args(ws, edit("version: 1", "version: true")), "version: Input should be a valid integer"),
    ("version '1'", lambda ws: run_args(ws, edit("version: 1", "version: '1'")), "version: Input should be a valid integer"),
    ("version 2**70", lambda ws: run_args(ws, edit("version: 1", f"version: {2**70}")),
     "version: Input should be less than or equal to 2147483647"),
    ("version !!float 1", lambda ws: run_args(ws, edit("version: 1", "version: !!float 1")),
     "version: Input should be a valid integer"),
    ("seeds !!set", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: !!set {0: null, 1: null}")),
     "line 12, column 8: the YAML tag !!set is not allowed"),
    ("rare .nan", lambda ws: run_args(ws, toy("test_per_class: 10}", "test_per_class: 10, rare: .nan}")),
     "dataset 'toy_pockets': parameter rare=nan: Input should be a finite number"),
    ("rare 5.0", lambda ws: run_args(ws, toy("test_per_class: 10}", "test_per_class: 10, rare: 5.0}")),
     "dataset 'toy_pockets': parameter rare=5.0: Input should be less than or equal to 1"),
    ("data_dir /etc in the suite", lambda ws: run_args(ws, toy("test_per_class: 10}", "test_per_class: 10, data_dir: /etc}")),
     "data_dir is not a suite parameter: give the folder with `bench run --data-dir`"),
    # Tracebacks.
    ("train_per_class 'abc'", lambda ws: run_args(ws, toy("train_per_class: 12", "train_per_class: 'abc'")),
     "dataset 'toy_pockets': parameter train_per_class='abc': Input should be a valid integer"),
    ("train_per_class -5", lambda ws: run_args(ws, toy("train_per_class: 12", "train_per_class: -5")),
     "dataset 'toy_pockets': parameter train_per_class=-5: Input should be greater than or equal to 1"),
    # Passed `bench validate`, then failed every cell.
    ("dropout 1.5", lambda ws: run_args(ws, edit("width: 4", "width: 4, dropout: 1.5")),
     "model 'small_cnn': parameter dropout=1.5: Input should be less than 1"),
    ("dropout -0.5", lambda ws: run_args(ws, edit("width: 4", "width: 4, dropout: -0.5")),
     "model 'small_cnn': parameter dropout=-0.5: Input should be greater than or equal to 0"),
    ("dropout .nan", lambda ws: run_args(ws, toy("hidden: [8]", "hidden: [8], dropout: .nan")),
     "model 'mlp': parameter dropout=nan: Input should be a finite number"),
    ("hidden [-4]", lambda ws: run_args(ws, toy("hidden: [8]", "hidden: [-4]")),
     "model 'mlp': parameter hidden=[-4], entry 0: Input should be greater than or equal to 1"),
    ("budget plus validation beyond the data", lambda ws: run_args(ws, toy("train_per_class: 12", "train_per_class: 5")
                                                                    .replace("budgets: [3]", "budgets: [10]")),
     "budget 10 per class plus val_per_class 2 exceeds the 5 training examples of the smallest class of data set "
     "'toy_pockets'"),
    ("budget 0.0001%", lambda ws: run_args(ws, toy("budgets: [3]", "budgets: ['0.0001%']")),
     "budget '0.0001%' leaves the smallest class of data set 'toy_pockets' no training example"),
    # The rest of the rule: duplicates, tags, and a declared size the suite cannot cut.
    ("seeds [0, 0]", lambda ws: run_args(ws, edit("seeds: [0]", "seeds: [0, 0]")),
     "seeds: Value error, seeds must be unique, repeated: 0"),
    ("train_per_class true", lambda ws: run_args(ws, toy("train_per_class: 12", "train_per_class: true")),
     "parameter train_per_class=True: Input should be a number, not true/false"),
    ("val_per_class takes every training example",
     lambda ws: run_args(ws, toy("val_per_class: 2", "val_per_class: 12").replace("budgets: [3]", "budgets: ['50%']")),
     "budget '50%': val_per_class 12 takes all 12 training examples of the smallest class of data set 'toy_pockets'"),
    ("test subset beyond the data", lambda ws: run_args(ws, toy("val_per_class: 2", "val_per_class: 2\ntest_per_class: 11")),
     "test_per_class 11 exceeds the 10 test examples of the smallest class of data set 'toy_pockets'"),
    ("an unquoted date", lambda ws: run_args(ws, edit("name: t", "name: t\ndescription: 2024-01-01")),
     "the YAML tag !!timestamp is not allowed"),
    ("epochs 10**12", lambda ws: run_args(ws, edit("train: {epochs: 1}", "train: {epochs: 1000000000000}")),
     "train.epochs: Input should be less than or equal to 100000"),
    ("hidden [10**9]", lambda ws: run_args(ws, toy("hidden: [8]", "hidden: [1000000000]")),
     "Input should be less than or equal to 65536"),
]


def assert_one_line_error(capsys: pytest.CaptureFixture, argv: list[str], expected: str, ws: Path,
                          code: int = 2) -> None:
    before = snapshot(ws / "results"), (ws / "LEADERBOARD.md").read_bytes()
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert (snapshot(ws / "results"), (ws / "LEADERBOARD.md").read_bytes()) == before  # no result lost or changed


def test_the_battery_is_large_and_distinct():
    assert len(CASES) >= 99
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(ws, capsys, name, argv, expected):
    assert_one_line_error(capsys, argv(ws), expected, ws)
    assert not (ws / "pwned").exists() and not Path("pwned").exists()


def test_leaderboard_on_a_read_only_file_system(ws, capsys, monkeypatch):
    read_only_fs(monkeypatch)
    argv = ["leaderboard", "--results", str(ws / "results"), "--output", str(ws / "LEADERBOARD.md")]
    assert_one_line_error(capsys, argv, "cannot write", ws)


def test_the_alias_bomb_costs_little_memory_and_time(tmp_path):
    path = Path(suite_file(tmp_path, BOMB))
    assert len(BOMB) < 1500
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(BenchError, match="alias bomb"):
            read_suite_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # bytes; the expanded tree would take gigabytes
    assert time.perf_counter() - start < 5  # seconds; generous for a loaded machine (it takes ~30 ms)


def test_the_alias_bomb_through_the_console_script(tmp_path):
    """In a fresh process with its data segment capped at 2 GB, so that a regression fails instead of
    swallowing the machine's memory."""
    path = suite_file(tmp_path, BOMB)
    cap = "import resource; resource.setrlimit(resource.RLIMIT_DATA, (2 * 2**30, 2 * 2**30)); "
    r = subprocess.run([sys.executable, "-c", cap + "import sys; from bench.cli import main; sys.exit(main())",
                        "validate", path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "alias bomb" in r.stderr and "Traceback" not in r.stderr


def test_duplicate_keys_are_refused_but_merge_keys_may_be_overridden(tmp_path):
    merged = GOOD.replace("train: {epochs: 1}", "base: &b {epochs: 1, lr: 0.01}\n") + "train:\n  <<: *b\n  epochs: 2\n"
    raw = read_suite_file(Path(suite_file(tmp_path, merged)))
    assert raw["train"] == {"epochs": 2, "lr": 0.01}
    with pytest.raises(BenchError, match=r"line 8, column \d+: duplicate key 'width' \(first at line 8\)"):
        read_suite_file(Path(suite_file(tmp_path, GOOD.replace("width: 4", "width: 4, width: 8"))))


def test_cell_path_refuses_names_that_leave_the_output_folder(tmp_path):
    assert cell_path(tmp_path, "t", 1, "cpu", "d", 2, "s", 0) == tmp_path / "t/v1/cpu/d/n2/s/seed0.json"
    for bad in ("../../x", "/etc", "a/b", "..", "."):
        with pytest.raises(BenchError, match="outside its place in the output folder"):
            cell_path(tmp_path, "t", 1, "cpu", "d", 2, bad, 0)
        with pytest.raises(BenchError, match="outside its place in the output folder"):
            cell_path(tmp_path, bad, 1, "cpu", "d", 2, "s", 0)


# ---- Faults after the input is accepted: each cell still becomes a result, and the run goes on. ----

E2E = GOOD.replace("seeds: [0]", "seeds: [0, 1]").replace("name: t", "name: e2e")


@dataclass
class ExitsOnSeed0:
    def run(self, task):
        if task.seed == 0:
            sys.exit(3)
        return StrategyResult(task.fit())


@dataclass
class LogsASetOnSeed0:
    def run(self, task):
        return StrategyResult(task.fit(), log={"rounds": [{"seen": {1, 2}}]} if task.seed == 0 else {"rounds": []})


@dataclass
class HangsOnSeed0:
    seconds: float = 180.0

    def run(self, task):
        if task.seed == 0:
            try:
                time.sleep(self.seconds)
            except Exception:  # a plug-in that swallows errors must not swallow the time limit
                pass
        return StrategyResult(task.fit())


@pytest.fixture
def fault_strategies():
    added = {"exits_on_seed0": ExitsOnSeed0, "logs_a_set_on_seed0": LogsASetOnSeed0, "hangs_on_seed0": HangsOnSeed0}
    for name, cls in added.items():
        STRATEGIES.add(name, cls, kind="baseline")
    yield
    for name in added:
        STRATEGIES._entries.pop(name, None)
        STRATEGIES._meta.pop(name, None)


def run_e2e(tmp_path: Path, strategy: str, *extra: str, text: str = E2E) -> tuple[int, dict[str, dict], str]:
    suite = tmp_path / "s.yaml"
    suite.write_text(text.replace("strategies: [real_only]", f"strategies: [{strategy}]"))
    out = tmp_path / "out"
    code = main(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--device", "cpu", *extra])
    valid = iter_results(out, on_invalid=lambda path, reason: None) if out.is_dir() else []
    got = {p.parent.name + "/" + p.name: r for p, r in valid}
    return code, got, str(out)


def test_sys_exit_in_a_strategy_is_an_error_result(tmp_path, fault_strategies, capsys):
    code, got, _ = run_e2e(tmp_path, "exits_on_seed0")
    assert code == 1
    bad, ok = got["exits_on_seed0/seed0.json"], got["exits_on_seed0/seed1.json"]
    assert bad["status"] == "error" and bad["error"]["type"] == "SystemExit"
    assert bad["error"]["message"] == "the strategy called sys.exit(3)"
    assert ok["status"] == "ok"  # the grid went on
    assert "1 done, 0 up to date, 1 failed" in capsys.readouterr().out


def test_a_log_json_cannot_hold_is_an_error_result_naming_the_key(tmp_path, fault_strategies, capsys):
    code, got, _ = run_e2e(tmp_path, "logs_a_set_on_seed0")
    assert code == 1
    bad = got["logs_a_set_on_seed0/seed0.json"]
    assert bad["status"] == "error" and bad["error"]["type"] == "TypeError"
    assert bad["error"]["message"] == "strategy_log.rounds.0.seen: set is not JSON serialisable"
    assert got["logs_a_set_on_seed0/seed1.json"]["status"] == "ok"


def test_a_hung_cell_times_out_and_the_run_goes_on(tmp_path, fault_strategies, capsys):
    start = time.perf_counter()
    # A limit that a tiny cell (seed 1) meets on a loaded 2-core machine too (about 2 s alone); seed 0 sleeps
    # 180 s.
    code, got, out = run_e2e(tmp_path, "hangs_on_seed0", "--cell-timeout", "20")
    assert time.perf_counter() - start < 120  # the 180 s sleep was cut short
    assert code == 1
    bad = got["hangs_on_seed0/seed0.json"]
    assert bad["status"] == "error" and bad["error"]["type"] == "Timeout"
    assert "longer than its limit of 20 s" in bad["error"]["message"]
    assert got["hangs_on_seed0/seed1.json"]["status"] == "ok"
    # The suite's own field works the same; the limit is not part of the config hash, so changing it
    # leaves the finished cell up to date.
    h1 = got["hangs_on_seed0/seed1.json"]["config_hash"]
    capsys.readouterr()
    code, got, _ = run_e2e(tmp_path, "hangs_on_seed0", text=E2E + "cell_timeout: 1\n")
    assert code == 1 and "0 done, 1 up to date, 1 failed" in capsys.readouterr().out
    assert got["hangs_on_seed0/seed0.json"]["error"]["type"] == "Timeout"
    assert got["hangs_on_seed0/seed1.json"]["config_hash"] == h1


def test_damaged_or_schema_invalid_results_are_recomputed(tmp_path, capsys):
    code, got, out = run_e2e(tmp_path, "real_only")
    assert code == 0
    paths = sorted(Path(out).rglob("seed*.json"))
    good = json.loads(paths[1].read_text())
    paths[0].write_text("[]")  # valid JSON, not an object
    good["metrics"]["accuracy"]["value"] = "50%"  # same hash, invalid against the schema
    paths[1].write_text(json.dumps(good))
    capsys.readouterr()
    code, got, _ = run_e2e(tmp_path, "real_only")
    assert code == 0 and "2 done, 0 up to date, 0 failed" in capsys.readouterr().out
    assert all(r["status"] == "ok" for r in got.values()) and len(got) == 2


def test_a_cell_path_that_is_a_folder_does_not_lose_the_record(tmp_path, capsys):
    blocked = tmp_path / "out/e2e/v1/cpu/cifar10/n2/real_only/seed0.json"
    blocked.mkdir(parents=True)
    code, got, out = run_e2e(tmp_path, "real_only")
    assert code == 1
    captured = capsys.readouterr()
    assert "1 done, 0 up to date, 1 failed" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("bench: warning")]
    assert len(warnings) == 1 and "Traceback" not in captured.err
    saved = Path(out) / ".unsaved" / "unsaved-e2e--v1--cpu--cifar10--n2--real_only--seed0.json"
    assert f"cannot write {blocked} (Is a directory); its ok record is saved in {saved}" in warnings[0]
    assert json.loads(saved.read_text())["status"] == "ok"
    assert got["real_only/seed1.json"]["status"] == "ok"  # the next cell ran and was written


def test_a_full_disk_saves_the_record_elsewhere_or_stops_cleanly(tmp_path, capsys, monkeypatch):
    def full(path, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("bench.runner.write_result", full)
    code, _, out = run_e2e(tmp_path, "real_only")
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("No space left on device") == 2 and "Traceback" not in err
    assert sorted(p.name for p in (Path(out) / ".unsaved").iterdir()) == [
        f"unsaved-e2e--v1--cpu--cifar10--n2--real_only--seed{seed}.json" for seed in (0, 1)]
    # When the fallback cannot write either, the run stops after the first cell with one message.
    monkeypatch.setattr("bench.runner.save_fallback", lambda out, path, record: None)
    code, _, _ = run_e2e(tmp_path, "real_only")
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("cannot save the record anywhere else") == 1 and "Traceback" not in err


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    folder = tmp_path / "s/v1/cpu/d/n2/x"
    folder.mkdir(parents=True)
    old_new = folder / ".bench-tmp-seed0.abc.tmp", folder / ".seed1.k2j3.tmp"  # ours, and an older version's
    fresh = folder / ".bench-tmp-seed2.def.tmp"  # a write in progress
    others = folder / "seed0.json", folder / "notes.tmp", folder / ".other.tmp"
    for p in (*old_new, fresh, *others):
        p.write_text("{}")
    hour_ago = time.time() - 3600
    for p in (*old_new, *others):
        os.utime(p, (hour_ago, hour_ago))
    assert sorted(clean_stale_temp_files(tmp_path)) == sorted(old_new)
    assert fresh.exists() and all(p.exists() for p in others)


def test_a_run_starts_by_removing_orphaned_temporary_files(tmp_path, capsys):
    orphan = tmp_path / "out/e2e/v1/cpu/cifar10/n2/real_only/.bench-tmp-seed0.x1y2.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_text('{"schema_version": 1')  # what a kill -9 mid-write leaves
    os.utime(orphan, (time.time() - 3600,) * 2)
    code, got, out = run_e2e(tmp_path, "real_only")
    assert code == 0 and not orphan.exists()
    assert not list(Path(out).rglob("*.tmp")) and len(got) == 2


def test_writes_fsync_the_file_and_its_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_result(tmp_path / "r" / "seed0.json", record())
    assert synced == ["file", "folder"]
