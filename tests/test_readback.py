"""Nothing read back is believed (issue 26): every tampering of a result file is refused by the one
strict reader (bench.results.read_valid_result) in one line, skipped by the readers (leaderboard,
compare) and recomputed by `bench run` (its up-to-date check); artifacts are verified before they are
inflated; no write escapes its folder; a full disk leaves no partial file; a killed driver leaves no
workers; a second run on one output folder is refused."""
from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from bench import artifacts, leaderboard
from bench import compare as bcompare
from bench import results as bresults
from bench.config import config_hash
from bench.errors import BenchError
from bench.results import cell_path, load_results, read_valid_result, save_fallback, write_result
from bench.runner import LOCK_FILE, _up_to_date, output_lock, run_suite

REPO = Path(__file__).resolve().parents[1]


def record(strategy: str = "real_only", seed: int = 0, acc: float = 0.5, *, suite: str = "s",
           budget: int | str = 10) -> dict[str, Any]:
    config = {"seed": seed, "strategy": {"name": strategy}}
    return {
        "schema_version": 1,
        "suite": {"name": suite, "version": 1, "preset": "cpu", "primary_metric": "accuracy"},
        "cell": {"dataset": "d", "budget": budget, "strategy": strategy, "seed": seed},
        "config": config,
        "config_hash": config_hash(config),
        "status": "ok",
        "error": None,
        "metrics": {"accuracy": {"value": acc, "higher_is_better": True}},
        "strategy_log": {},
        "compute": {"wall_seconds": 1.0, "cpu_seconds": 1.0, "cpu_hours": 1 / 3600, "peak_rss_bytes": 1,
                    "peak_rss_scope": "cell", "device": "cpu", "gpu_peak_memory_bytes": None, "gpu_hours": None},
        "code": {"git_commit": None, "git_dirty": None, "package_version": "0.1.0"},
        "packages": {},
        "hardware": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def put(root: Path, r: dict[str, Any], probs: bool = True) -> Path:
    """Write `r` where the store keeps it, with an artifacts file (test probabilities)."""
    c, s = r["cell"], r["suite"]
    path = cell_path(root, s["name"], s["version"], s["preset"], c["dataset"], c["budget"], c["strategy"], c["seed"])
    r = copy.deepcopy(r)
    if probs:
        r[artifacts.PAYLOAD] = {"sidecar": {"probs": np.full((4, 2), 0.5, dtype=np.float32)}}
    write_result(path, r, root=root)
    return path


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path]:
    """A results folder with real_only and smote, seeds 0 and 1; returns (root, real_only seed0's path)."""
    root = tmp_path / "results"
    first = put(root, record("real_only", 0, 0.50))
    put(root, record("real_only", 1, 0.52))
    put(root, record("smote", 0, 0.60))
    put(root, record("smote", 1, 0.62))
    return root, first


def edit_text(path: Path, change: Callable[[str], str]) -> None:
    text = path.read_text()
    new = change(text)
    assert new != text, "the edit changed nothing"
    path.write_text(new)


def edit_json(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    r = json.loads(path.read_text())
    change(r)
    path.write_text(json.dumps(r, indent=2) + "\n")


def refused(root: Path, path: Path, match: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`path` is refused by the reader (one line naming it), skipped by the leaderboard (one warning line),
    refused by compare, and not up to date for `bench run` (so it is recomputed)."""
    with pytest.raises(BenchError, match=match) as info:
        read_valid_result(path, root)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    groups = leaderboard.collect(root)
    err = capsys.readouterr().err
    assert str(path) in err and len([line for line in err.splitlines() if str(path) in line]) == 1
    assert all(r.path != path for rs in groups.values() for r in rs)
    with pytest.raises(BenchError):
        bcompare.collect(root, "--new")
    assert not _up_to_date(path, json.loads(path.read_bytes())["config_hash"] if path.is_file() and
                           path.stat().st_size < 10**6 else "0" * 64, root)


def counts(root: Path) -> dict[str, int]:
    """Results per strategy as the leaderboard counts them."""
    out: dict[str, int] = {}
    for rs in leaderboard.collect(root).values():
        for r in rs:
            out[r.strategy] = out.get(r.strategy, 0) + 1
    return out


def test_the_good_store_reads_whole(store):
    root, _ = store
    assert counts(root) == {"real_only": 2, "smote": 2}
    assert all(_up_to_date(r.path, r.config_hash, root) for r in load_results(root))


# -- result-file contents -----------------------------------------------------------------------

CONTENT_TAMPERINGS: dict[str, tuple[Callable[[Path], None], str]] = {
    "metric NaN": (lambda p: edit_text(p, lambda t: t.replace('"value": 0.5', '"value": NaN')), "NaN is not"),
    "metric Infinity": (lambda p: edit_text(p, lambda t: t.replace('"value": 0.5', '"value": Infinity')),
                        "Infinity is not"),
    "metric 1e999": (lambda p: edit_text(p, lambda t: t.replace('"value": 0.5', '"value": 1e999')), "not a finite"),
    "wall_seconds NaN": (lambda p: edit_text(p, lambda t: t.replace('"wall_seconds": 1.0', '"wall_seconds": NaN')),
                         "NaN is not"),
    "duplicate keys": (lambda p: edit_text(p, lambda t: t.replace('"status": "ok",', '"status": "error",\n  "status": "ok",')),
                       "duplicate key 'status'"),
    "created_at yesterday": (lambda p: edit_json(p, lambda r: r.update(created_at="yesterday")), "created_at"),
    "artifacts.file with a final newline": (
        lambda p: edit_json(p, lambda r: r["artifacts"].update(file=r["artifacts"]["file"] + "\n")), "artifacts.file"),
    "config edited, hash kept": (lambda p: edit_json(p, lambda r: r["config"].update(seed=7)), "config_hash"),
    "suite name escaping": (lambda p: edit_json(p, lambda r: r["suite"].update(name="../../ESCAPED")), "suite.name"),
    "negative phase": (lambda p: edit_json(p, lambda r: r["compute"].update(phases={"fit": -1.0})), "phases"),
}


@pytest.mark.parametrize("case", sorted(CONTENT_TAMPERINGS))
def test_a_tampered_result_is_refused_skipped_and_recomputed(store, case, capsys):
    root, path = store
    tamper, match = CONTENT_TAMPERINGS[case]
    tamper(path)
    refused(root, path, match, capsys)
    assert counts(root) == {"real_only": 1, "smote": 2}  # never counted


def test_an_accuracy_outside_its_declared_range_is_refused(store, monkeypatch, capsys):
    """A metric whose capabilities declare a range (a fraction: [0, 1]) cannot hold 5.0."""
    root, path = store
    monkeypatch.setattr(bresults, "metric_range", lambda name: (0.0, 1.0) if name == "accuracy" else None)
    read_valid_result(path, root)
    edit_json(path, lambda r: r["metrics"]["accuracy"].update(value=5.0))
    refused(root, path, r"outside the metric's range \[0, 1\]", capsys)


def test_a_seed_file_copied_to_another_seed_counts_once(store, capsys):
    root, path = store
    (path.parent / "seed1.json").write_bytes(path.read_bytes())  # seed0 over seed1 (the npz named is seed0's)
    refused(root, path.parent / "seed1.json", "records cell .*seed0, not the cell its path names", capsys)
    assert counts(root) == {"real_only": 1, "smote": 2}


def test_a_record_copied_over_another_strategy_does_not_make_it_disappear(store, capsys):
    root, path = store
    smote = path.parents[1] / "smote" / "seed0.json"
    smote.write_bytes(path.read_bytes())
    refused(root, smote, "records cell .*real_only/seed0", capsys)
    assert counts(root) == {"real_only": 2, "smote": 1}


@pytest.mark.parametrize("change", ["suite ghost", "budget all"])
def test_a_record_naming_another_place_grows_no_section(store, change, capsys):
    root, path = store
    edit_json(path, lambda r: r["suite"].update(name="ghost") if change == "suite ghost" else r["cell"].update(budget="all"))
    refused(root, path, "not the cell its path names", capsys)
    assert len(leaderboard.collect(root)) == 1


def test_a_result_symlinked_to_a_planted_file_is_not_shown(store, tmp_path, capsys):
    root, path = store
    planted = tmp_path / "planted.json"
    good = json.loads(path.read_text())
    good["metrics"]["accuracy"]["value"] = 0.999
    planted.write_text(json.dumps(good))
    path.unlink()
    path.symlink_to(planted)
    refused(root, path, "symbolic link", capsys)
    assert "0.999" not in leaderboard.render(root)


def test_a_symlinked_strategy_folder_is_neither_done_nor_omitted_silently(store, tmp_path, capsys):
    root, path = store
    elsewhere = tmp_path / "elsewhere"
    (path.parent).rename(elsewhere)
    path.parent.symlink_to(elsewhere, target_is_directory=True)
    assert not _up_to_date(path, config_hash(record()["config"]), root)  # run: recomputed, not "done"
    capsys.readouterr()
    assert counts(root) == {"smote": 2}
    assert f"{path.parent} is a symbolic link" in capsys.readouterr().err  # leaderboard: named, not silent
    with pytest.raises(BenchError, match="symbolic link"):  # compare and stats read through the same reader
        bcompare.collect(root, "--new")
    with pytest.raises(BenchError, match="symbolic link"):  # and no write goes through it
        write_result(path, record(), root=root)
    assert (elsewhere / "seed0.json").is_file()


def test_a_damaged_artifact_is_noticed(store, capsys):
    root, path = store
    npz = path.with_suffix(".npz")
    blob = bytearray(npz.read_bytes())
    blob[-30] ^= 0xFF
    npz.write_bytes(bytes(blob))
    refused(root, path, "artifact file .* is damaged", capsys)


def test_a_result_linked_to_dev_zero_is_one_line_not_a_memory_error(store, capsys):
    root, path = store
    path.unlink()
    path.symlink_to("/dev/zero")
    refused(root, path, "symbolic link", capsys)
    with pytest.raises(BenchError, match="not a regular file"):  # the device itself, without the link
        bresults.read_result(Path("/dev/zero"))


def test_an_oversized_result_file_is_refused_before_it_is_parsed(store, monkeypatch, capsys):
    root, path = store
    monkeypatch.setattr(bresults, "MAX_RESULT_BYTES", 1000)
    refused(root, path, r"more than the 1,000", capsys)


def test_an_inflating_artifact_is_refused_before_it_is_inflated(store, monkeypatch):
    """28 MB that inflate to 6 GiB, scaled down: 100 KB of zeros inflate to 100 MB, sha256 updated."""
    root, path = store
    buf = io.BytesIO()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (100 * 2**20 // 4,)})
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("probs.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            for _ in range(100):
                member.write(bytes(2**20))
    data = buf.getvalue()
    path.with_suffix(".npz").write_bytes(data)
    edit_json(path, lambda r: r["artifacts"].update(bytes=len(data), sha256=__import__("hashlib").sha256(data).hexdigest()))
    read_valid_result(path, root)  # size and checksum match: the record stands
    monkeypatch.setattr(artifacts, "MAX_INFLATED_BYTES", 10 * 2**20)
    with pytest.raises(BenchError, match="inflates to more than 10,485,760 bytes"):
        artifacts.read_sidecar(path, json.loads(path.read_text()))


def test_an_npy_header_claiming_a_huge_shape_is_refused():
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("probs.npy", header.getvalue() + bytes(64))
    with pytest.raises(BenchError, match="claims a shape"):
        artifacts.load_npz(buf.getvalue(), Path("x.npz"))


# -- writes stay in their folder ----------------------------------------------------------------


def test_the_report_writes_nothing_outside_out_for_an_escaping_suite_name(store, tmp_path, capsys):
    from bench import report

    root, path = store
    edit_json(path, lambda r: r["suite"].update(name="../../../ESCAPED"))
    out = tmp_path / "site" / "report"
    report.build(root, out)
    assert "ESCAPED" in capsys.readouterr().err  # named, skipped
    written = {p for p in tmp_path.rglob("*.svg")}
    assert all(out in p.parents for p in written) and not list(tmp_path.rglob("*ESCAPED*"))


def test_the_report_refuses_an_unsafe_figure_name(store, tmp_path, monkeypatch):
    from bench import report

    root, _ = store
    real_section = report.section

    def section(*args, **kwargs):
        args[3]["../../ESCAPED-forest.svg"] = b"<svg/>"
        return real_section(*args, **kwargs)

    monkeypatch.setattr(report, "section", section)
    with pytest.raises(BenchError, match="not a safe file name"):
        report.build(root, tmp_path / "out")
    assert not list(tmp_path.rglob("*ESCAPED*"))


def test_an_empty_out_is_refused():
    with pytest.raises(BenchError, match="output folder is empty"):
        run_suite(None, "")  # type: ignore[arg-type]  # refused before the suite is looked at


def test_the_fallback_follows_no_planted_symlink(tmp_path, monkeypatch, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    (tmp / "bench-unsaved").symlink_to(victim, target_is_directory=True)  # the old fixed name, planted
    out = tmp_path / "out"
    out.mkdir()
    (out / ".unsaved").symlink_to(victim, target_is_directory=True)
    r = record()
    path = cell_path(out, "s", 1, "cpu", "d", 10, "real_only", 0)
    saved = save_fallback(out, path, r)
    assert saved is not None and saved.parent.parent == tmp and saved.parent.name.startswith("bench-unsaved-")
    assert json.loads(saved.read_text())["cell"] == r["cell"]
    assert saved.parent.stat().st_mode & 0o777 == 0o700 and saved.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in victim.iterdir()) == ["precious"] and (victim / "precious").read_text() == "keep"
    assert f"{out / '.unsaved'} is not a real folder" in capsys.readouterr().err


@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 64 KiB file system (tmpfs), to fill: where mounting is not allowed, the test is skipped."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs Linux and root (CI containers run tests as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=64", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, bytes(512))
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_leaves_no_empty_or_truncated_fallback(small_fs, tmp_path, monkeypatch, capsys):
    out = small_fs / "out"
    out.mkdir()
    monkeypatch.setenv("TMPDIR", str(small_fs))  # the temporary folder is on the full disk too
    _fill(small_fs)
    r = record()
    r["strategy_log"] = {"log": "x" * 20000}  # larger than any block left
    saved = save_fallback(out, cell_path(out, "s", 1, "cpu", "d", 10, "real_only", 0), r)
    assert saved is None  # said, not silently put in another folder
    err = capsys.readouterr().err
    assert f"cannot save the record in {out / '.unsaved'}" in err and "No space left" in err
    leftovers = [p for p in small_fs.rglob("*") if p.is_file() and p.name != "filler"]
    assert leftovers == []


def test_a_failed_leaderboard_write_leaves_the_old_file_whole(small_fs, store):
    root, _ = store
    target = small_fs / "LEADERBOARD.md"
    target.write_text("old leaderboard\n")
    _fill(small_fs)
    with pytest.raises(OSError):
        leaderboard.write(root, target)
    assert target.read_text() == "old leaderboard\n"
    assert sorted(p.name for p in small_fs.iterdir()) == ["LEADERBOARD.md", "filler"]


# -- processes ----------------------------------------------------------------------------------


def test_a_second_run_on_one_out_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from bench.runner import output_lock
        with output_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BenchError, match=rf"another bench run \(pid {holder.pid}\) is writing into {out}"):
            with output_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):  # the lock died with its holder: no stale lock
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())


_DRIVER = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor

    def init(parent, force_watchdog):
        if force_watchdog:
            sys.platform = "other"  # the portable fallback: a thread watching os.getppid()
        from bench.executors import die_with_parent
        # one write of the whole line: two workers' print() calls (text, then newline) can interleave in the pipe
        os.write(1, (die_with_parent(parent) + "\\n").encode())

    def pid(_):
        time.sleep(0.5)
        return os.getpid()

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(2, mp_context=ctx, initializer=init, initargs=(os.getpid(), sys.argv[1] == "1"))
        print(" ".join(map(str, sorted(set(pool.map(pid, range(4)))))), flush=True)
        time.sleep(600)  # killed -9 by the test
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the workers")
@pytest.mark.parametrize("watchdog", [False, True], ids=["pdeathsig", "watchdog"])
def test_workers_die_with_a_killed_driver(tmp_path, watchdog):
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), "1" if watchdog else "0"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        lines = [driver.stdout.readline().strip() for _ in range(3)]
        mechanisms, workers = lines[:2], [int(p) for p in lines[2].split()]
        assert mechanisms == ["watchdog" if watchdog else "pdeathsig"] * 2 and len(workers) == 2
        assert all(_alive(p) for p in workers)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def test_pool_workers_are_bound_to_their_driver(monkeypatch):
    """LocalPool passes the driver's pid to its workers' initializer, which arms die_with_parent."""
    from bench import executors

    armed: list[int] = []
    monkeypatch.setattr(executors, "die_with_parent", lambda parent: armed.append(parent) or "pdeathsig")
    monkeypatch.setattr(executors, "adopt_plugins", lambda entries: None)
    monkeypatch.setattr(executors.signal, "signal", lambda *a: None)
    executors._init_worker(1, b"", None, 4242)
    assert armed == [4242]
