"""The command line: every kind of bad input is one line on stderr and exit code 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_suite import GOOD

from bench.cli import main


def suite(tmp_path: Path, text: str = GOOD) -> str:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return str(p)


def one_line_error(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert expected in err, err


@pytest.mark.parametrize("edit,argv_extra,expected", [
    (None, None, "unknown suite 'cifar100'"),
    (("strategies: [real_only]", "strategies: [real_onyl]"), [], "unknown strategy 'real_onyl'. Did you mean 'real_only'"),
    (("metrics: [accuracy]", "metrics: [accuracy, acuracy]"), [], "unknown metric 'acuracy'"),
    (("metrics: [accuracy]", "metrics: [{name: accuracy, params: {samples: 5}}]"), [], "metric 'accuracy': bad parameters"),
    (("metrics: [accuracy]", "metrics: [accuracy, accuracy]"), [], "metrics must be unique"),
    (("seeds: [0]", "seeds: [0"), [], "malformed YAML"),
    (("budgets: [2]", "budgets: [two]"), [], "budgets.0: Value error, budget 'two' is not one of: a positive integer"),
    (("budgets: [2]", "budgets: [-2]"), [], "budgets.0: Value error, a budget of -2 examples per class: it must be at least 1"),
    (("model: {name: small_cnn, params: {width: 4}}", "model: {name: small_cnn, params: {depth: 4}}"), [],
     "model 'small_cnn': unknown parameter depth; known: width, dropout, augment, crop_pad"),
    (("datasets: [cifar10]", "datasets: [cifar11]"), [], "unknown dataset 'cifar11'"),
    (("strategies: [real_only]", "strategies: [smote]"), [], "synthesises data: the suite needs a `synthetic:` section"),
    (("strategies: [real_only]", "strategies: [{name: active_synthesis, params: {tau: 2}}]"), [],
     "strategy 'active_synthesis': bad parameters"),
])
def test_bad_suite_input(tmp_path, capsys, edit, argv_extra, expected):
    if edit is None:
        argv = ["run", "--suite", "cifar100", "--out", str(tmp_path / "out")]
    else:
        argv = ["run", "--suite", suite(tmp_path, GOOD.replace(*edit)), "--out", str(tmp_path / "out")]
    one_line_error(capsys, argv, expected)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))


def test_sd_path_is_asked_for_and_checked(tmp_path, capsys):
    base = ["run", "--suite", "cifar10", "--preset", "gpu-sd", "--device", "cpu", "--out", str(tmp_path / "out")]
    one_line_error(capsys, base, "generator 'sd_lora' loads local weights: pass --sd-path FOLDER")
    one_line_error(capsys, [*base, "--sd-path", str(tmp_path / "nowhere")], "model folder")
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(capsys, ["run", "--suite", suite(tmp_path), "--out", str(blocker / "results")],
                   "is not writable")


def test_missing_data_folder(tmp_path, capsys):
    one_line_error(capsys, ["run", "--suite", suite(tmp_path), "--out", str(tmp_path / "o"),
                            "--data-dir", str(tmp_path / "no-such-folder")], "does not exist")


def test_bad_flags(tmp_path, capsys):
    one_line_error(capsys, ["run", "--suite", suite(tmp_path), "--seeds", "0,x"], "--seeds takes comma-separated integers")
    one_line_error(capsys, ["run", "--suite", suite(tmp_path), "--device", "tpu"], "invalid choice: 'tpu'")
    one_line_error(capsys, ["run", "--suite", suite(tmp_path), "--preset", "gpu"], "has no preset 'gpu'")
    one_line_error(capsys, ["ls", "widgets"], "invalid choice: 'widgets'")
    one_line_error(capsys, ["frobnicate"], "invalid choice: 'frobnicate'")


def test_validate_suite_and_result(tmp_path, capsys):
    assert main(["validate", suite(tmp_path)]) == 0
    assert "valid suite" in capsys.readouterr().out
    bad = tmp_path / "r.json"
    bad.write_text('{"schema_version": 1}')
    one_line_error(capsys, ["validate", str(bad)], "result does not match schema")
    one_line_error(capsys, ["validate", str(tmp_path / "nothing.yaml")], "does not exist")


def test_every_builtin_suite_validates(capsys):
    import bench.benchmarks as benchmarks
    for path in sorted(benchmarks.SUITES_DIR.glob("*.yaml")):
        assert main(["validate", str(path)]) == 0, path


@pytest.mark.parametrize("kind", ["datasets", "models", "generators", "strategies", "metrics", "suites"])
def test_ls_lists_every_registry(kind, capsys):
    assert main(["ls", kind]) == 0  # capabilities of every type (tuples of numbers too) print
    assert capsys.readouterr().out.strip()


def test_ls_lists_registries(capsys):
    assert main(["ls", "strategies"]) == 0
    assert "real_only" in capsys.readouterr().out
    assert main(["ls", "metrics"]) == 0
    out = capsys.readouterr().out
    assert "accuracy\thigher_is_better=True" in out and "ece\thigher_is_better=False" in out


def test_leaderboard_without_results_folder(tmp_path, capsys):
    one_line_error(capsys, ["leaderboard", "--results", str(tmp_path / "none")], "does not exist")


def test_console_script_prints_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bench", "run", "--suite", "nope", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "Traceback" not in r.stderr


def test_a_control_that_differs_from_the_method_in_more_than_targeting_is_a_warning(tmp_path, capsys):
    """random_synthetic must share active_synthesis's loop parameters; a suite where it does not is valid
    but gets one warning line naming the difference (targeting-only parameters may differ)."""
    from tiny_suite import GOOD

    def suite(random_params: str, active_params: str) -> str:
        path = tmp_path / "s.yaml"
        path.write_text(GOOD.replace("strategies: [real_only]", "synthetic: {generator: {name: pca_gmm}, "
                                     "budget_per_class: 1, mix_ratio: 0.5}\nstrategies: [{name: random_synthetic, "
                                     f"params: {random_params}}}, {{name: active_synthesis, params: {active_params}}}]"))
        return str(path)

    assert main(["validate", suite("{pool_size: 100}", "{pool_size: 200}")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: warning:") and "pool_size 200 vs 100" in err[0]
    assert main(["validate", suite("{pool_size: 100}", "{pool_size: 100, targeting: seeds, min_lift: 2.0}")]) == 0
    assert capsys.readouterr().err == ""


def test_set_overrides_the_suite_of_run_rescore_and_validate(tmp_path, capsys):
    assert main(["validate", suite(tmp_path), "--set", "seeds=[0, 1, 2]", "--set", "budgets.0=1"]) == 0
    assert "cpu: 3 cells" in capsys.readouterr().out
    for command in (["run", "--out", str(tmp_path / "out")], ["rescore", "--results", str(tmp_path)]):
        one_line_error(capsys, [*command, "--suite", suite(tmp_path), "--set", "trian.epochs=3"],
                       "--set trian.epochs: suite 't' [cpu] has no 'trian' at the top level")
        one_line_error(capsys, [*command, "--suite", suite(tmp_path), "--set", "nonsense"], "--set takes KEY=VALUE")
    assert not (tmp_path / "out").exists()


def test_the_command_line_loads_no_plugin_or_torch_before_a_command_runs():
    """Parsing (and refusing) arguments imports neither torch nor a plug-in folder, so a bad argument is
    refused at once; each command module has its parser and its command."""
    code = ("import sys; from bench.cli import COMMANDS, build_parser; build_parser().parse_args(['run', '--suite', "
            "'x', '--set', 'train.epochs=3']); assert all(callable(m.add_parser) and callable(m.cmd) for m in "
            "COMMANDS.values()); print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(("
            "'bench.method', 'bench.baselines', 'bench.benchmarks', 'bench.metrics', 'bench.config'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("argv,expected", [
    (["run", "--suite", "smoke", "--seed", "0"], "unrecognized arguments: --seed 0"),  # not a prefix of --seeds
    (["compare", "results", "results", "--tol", "0.1"], "unrecognized arguments: --tol 0.1"),
    (["run", "--suite", "smoke", "--seeds", "0,1,"], "--seeds takes comma-separated integers, got '0,1,'"),
    (["run", "--suite", "smoke", "--seeds", "0,,1"], "--seeds takes comma-separated integers, got '0,,1'"),
    (["run", "--suite", "smoke", "--seeds", "1,0,1"], "--seeds names a seed twice: '1,0,1'"),
    (["run", "--suite", "smoke", "--out", ""], "--out takes a folder, got an empty path"),
    (["run", "--suite", "smoke", "--out", "  "], "--out takes a folder, got an empty path"),
])
def test_what_a_user_types_by_habit_is_refused_before_any_work(capsys, argv, expected):
    one_line_error(capsys, argv, expected)


def test_a_run_writes_outside_the_committed_results_unless_told_and_git_ignores_it():
    from bench.cli import build_parser
    from bench.cli.arguments import DEFAULT_RESULTS, DEFAULT_RUNS

    args = build_parser().parse_args(["run", "--suite", "smoke"])
    assert args.out == DEFAULT_RUNS != DEFAULT_RESULTS
    assert build_parser().parse_args(["leaderboard"]).results == DEFAULT_RESULTS  # readers read the committed ones
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    # runs/ (the default output) and a `.venv` redirect *file* (which tox writes unless told not to) are ignored
    ignored = subprocess.run(["git", "check-ignore", "--no-index", f"{DEFAULT_RUNS}/x/seed0.json", ".venv"],
                             cwd=root, capture_output=True, text=True).stdout.split()
    assert ignored == [f"{DEFAULT_RUNS}/x/seed0.json", ".venv"]
    assert "venv_redirect = false" in (root / "tox.ini").read_text()


@pytest.mark.parametrize("argv", [
    ["run", "--suite", "cifar-10"],
    ["run", "--suite", "cifar10", "--preset", "GPU"],
    ["run", "--suite", "cifar10", "--device", "cuda"],
    ["ls", "suites"],
])
def test_input_errors_and_listing_suites_import_neither_torch_nor_a_plugin(argv):
    """Refused (or answered) from the arguments and the suite files alone: no data set, model or library is
    imported, which on a loaded 2-core machine is the difference between about a second and twenty."""
    from bench.device import GPU_DEVICE_NODES

    if "cuda" in argv and any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/kfd")):
        pytest.skip(f"this machine has a GPU device node ({', '.join(GPU_DEVICE_NODES)})")
    code = ("import sys; from bench.cli import main; rc = main(sys.argv[1:]); "
            "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('bench.benchmarks.datasets', "
            "'bench.benchmarks.models', 'bench.baselines', 'bench.method', 'bench.metrics'))); print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == ("0 []" if argv[0] == "ls" else "2 []"), out.stdout + out.stderr


def test_a_missing_optional_package_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    """A suite whose data set needs an extra the environment lacks (the smoke suite reads CIFAR-10's
    parquet files with pyarrow, from `.[vision]`) fails with one line that says what to install."""
    import bench.cli.run as run_command

    def needs_pyarrow(args):
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr(run_command, "cmd", needs_pyarrow)
    assert main(["run", "--suite", "smoke", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "bench: error: pyarrow is not installed, and this command needs it: pip install -e '.[text]' or '.[vision]'"]

    def broken_install(args):
        raise ModuleNotFoundError("No module named 'bench.gone'", name="bench.gone")

    monkeypatch.setattr(run_command, "cmd", broken_install)
    with pytest.raises(ModuleNotFoundError):  # the harness's own module: a broken install keeps its traceback
        main(["run", "--suite", "smoke", "--out", str(tmp_path / "out")])
