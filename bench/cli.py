"""The `bench` command: run, rescore, leaderboard, stats, report, compare, fid, ls, validate.

Every user-facing error (BenchError, bad arguments) is one line on stderr and exit code 2;
a run whose cells all finished exits 0, one with error cells exits 1.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from bench.errors import BenchError

DEFAULT_RESULTS = Path("results")
DEFAULT_LEADERBOARD = Path("LEADERBOARD.md")
DEFAULT_SITE = Path("site")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        raise BenchError(message)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds takes non-negative integers, got {text!r}")
    return seeds


def _positive(flag: str, unit: str):
    """An argparse type: a finite number > 0, else a one-line usage error naming the flag and its unit."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} takes a positive number of {unit}, got {text!r}")
        return value

    return parse


def _whole(flag: str):
    """An argparse type: a whole number >= 1, else a one-line usage error naming the flag."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number >= 1, got {text!r}")
        return value

    return parse


def _at_least_zero(flag: str, unit: str):
    """An argparse type: a finite number >= 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} takes a number of {unit} >= 0, got {text!r}")
        return value

    return parse


def _tolerance(text: str) -> float:
    """--tolerance: a finite relative tolerance >= 0 (0: exact everywhere)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"--tolerance takes a relative tolerance >= 0 (e.g. 1e-4), got {text!r}")
    return value


def _count(text: str) -> int:
    """--samples: a whole number of images >= 2 (a covariance needs two)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"--samples takes a whole number of images >= 2, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bench", description="Benchmark harness for active synthesis.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run every cell of a suite (resumable)")
    r.add_argument("--suite", required=True, help="a registered suite name or a path to a suite .yaml")
    r.add_argument("--seeds", type=_seeds, help="comma-separated seeds, overriding the suite's (e.g. 0,1,2)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    r.add_argument("--preset", default="cpu", help="cpu (default) or a preset the suite defines, e.g. gpu")
    r.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    r.add_argument("--data-dir", help="folder holding the data sets (default: BENCH_DATA_DIR, shared data, cache)")
    r.add_argument("--force", action="store_true", help="recompute cells whose result is up to date")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--cell-timeout", type=_positive("--cell-timeout", "seconds"), metavar="SECONDS",
                   help="a cell running longer becomes an error result (type Timeout) and the run goes on; "
                   "overrides the suite's cell_timeout")
    r.add_argument("--sd-path", metavar="FOLDER", help="local Stable Diffusion weights (a diffusers folder) for a "
                   "suite whose generator loads them (sd_lora); sets synthetic.generator.params.model_path")
    r.add_argument("--lm-path", metavar="FOLDER", help="a local instruction-tuned language model (a transformers "
                   "folder, e.g. an 8B model for a GPU) used by the suite's text generator (smollm2) instead of "
                   "SmolLM2-135M; sets synthetic.generator.params.model_path; nothing is downloaded")
    r.add_argument("--keep-synthetic", action="store_true", help="also save each cell's whole synthetic split "
                   "under OUT/.synthetic (not for git), so that `bench rescore` can compute synthetic-quality metrics "
                   "later; sets the suite's keep_synthetic")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where cells run: local (default; this machine) or ray (Ray tasks on a cluster, or on a Ray "
                   "instance started here); results are written by this process either way")
    r.add_argument("--workers", type=_whole("--workers"), metavar="N",
                   help="local: N worker processes, each with max(1, cores // N) torch threads (default 1: cells run "
                   "one after another in this process); ray: at most N tasks in flight (default: as the cluster allows)")
    r.add_argument("--address", metavar="auto|HOST:PORT", help="ray: the cluster to join, auto (the one started on "
                   "this machine with `ray start`, or RAY_ADDRESS) or its head node's HOST:PORT; default: start a "
                   "Ray instance on this machine")
    r.add_argument("--cpus-per-cell", type=_positive("--cpus-per-cell", "CPUs"), metavar="C",
                   help="ray: CPUs a cell's task declares (default 1; fractions allowed); it runs with max(1, floor(C)) "
                   "torch threads")
    r.add_argument("--gpus-per-cell", type=_at_least_zero("--gpus-per-cell", "GPUs"), metavar="G",
                   help="ray: GPUs a cell's task declares (default 0; 0.5: two cells share a GPU)")

    rs = sub.add_parser("rescore", help="compute metrics a suite lists that its finished results lack, from the "
                        "stored artifacts, without retraining")
    rs.add_argument("--results", type=Path, required=True, help="the results folder of `bench run --out`")
    rs.add_argument("--suite", required=True, help="a registered suite name or a path to a suite .yaml (as it is now)")
    rs.add_argument("--preset", default="cpu", help="cpu (default) or a preset the suite defines, e.g. gpu")
    rs.add_argument("--seeds", type=_seeds, help="the seeds the cells ran with, if `bench run --seeds` overrode the suite's")
    rs.add_argument("--sd-path", metavar="FOLDER", help="as given to `bench run` (part of the cells' config)")
    rs.add_argument("--lm-path", metavar="FOLDER", help="as given to `bench run` (part of the cells' config)")
    rs.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="for metrics that run a "
                    "network (FID's Inception, MiniLM); default: cuda if present")
    rs.add_argument("--data-dir", help="folder holding the data sets (default: BENCH_DATA_DIR, shared data, cache)")
    rs.add_argument("--quiet", action="store_true", help="no progress bar")

    lb = sub.add_parser("leaderboard", help="regenerate LEADERBOARD.md from the results")
    lb.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    lb.add_argument("--output", type=Path, default=DEFAULT_LEADERBOARD)
    lb.add_argument("--check", action="store_true", help="fail (exit 1) if the file is not what results/ gives, or if a result does not come from a clean tree at a commit of this repository")

    st = sub.add_parser("stats", help="paired verdicts by seed, and the seeds needed to detect an effect")
    st.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    st.add_argument("--suite", help="only this suite (default: every suite with results)")
    st.add_argument("--effect", type=_positive("--effect", "points"), metavar="POINTS",
                    help="effect to size the seeds for, in points (0.01 of the metric; default 1)")

    rp = sub.add_parser("report", help="build a static HTML report (index.html and SVG figures) from the results")
    rp.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder (default: results)")
    rp.add_argument("--out", type=Path, default=DEFAULT_SITE, help="output folder (default: site)")

    ls = sub.add_parser("ls", help="list registered entries")
    ls.add_argument("kind", choices=["suites", "datasets", "models", "generators", "strategies", "metrics"])

    v = sub.add_parser("validate", help="check a suite file or a result file")
    v.add_argument("file", type=Path)

    c = sub.add_parser("compare", help="compare two result folders cell by cell (did a rerun reproduce the numbers?)")
    c.add_argument("ref", type=Path, metavar="REF_DIR", help="the reference results, e.g. results")
    c.add_argument("new", type=Path, metavar="NEW_DIR", help="the results to check, e.g. my-results")
    c.add_argument("--tolerance", type=_tolerance, metavar="REL",
                   help="relative tolerance for every pair (default: exact when both cells ran on the CPU, "
                   "1e-4 when either ran on CUDA)")
    c.add_argument("--json", action="store_true", help="write the report as JSON to stdout")

    f = sub.add_parser("fid", help="FID (and KID, coverage, density, 1-NN accuracy) between two image sets")
    f.add_argument("a", type=Path, metavar="A", help="the reference images: a folder of image files or a .npy "
                   "of uint8 (N, H, W, C) or (N, H, W)")
    f.add_argument("b", type=Path, metavar="B", help="the images to score, likewise")
    f.add_argument("--kid", action="store_true", help="also the kernel Inception distance")
    f.add_argument("--prdc", action="store_true", help="also coverage, density (k=5) and 1-NN accuracy")
    f.add_argument("--samples", type=_count, metavar="N", help="a seeded subset of N images per set (default: all)")
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    return p


def cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_suite
    from bench.executors import make_executor
    from bench.runner import run_suite

    executor = make_executor(args.executor, workers=args.workers, address=args.address,
                             cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell)
    suite = load_suite(args.suite, preset=args.preset, seeds=args.seeds, model_path=args.sd_path,
                       lm_path=args.lm_path)
    if args.keep_synthetic:
        suite = suite.model_copy(update={"keep_synthetic": True})
    s = run_suite(suite, args.out, device=args.device, force=args.force, quiet=args.quiet, data_dir=args.data_dir,
                  cell_timeout=args.cell_timeout, executor=executor)
    print(f"{suite.name} [{suite.preset}]: {len(s.done)} done, {len(s.skipped)} up to date, "
          f"{len(s.failed)} failed; results in {args.out}")
    for path in s.failed:
        print(f"failed: {path}", file=sys.stderr)
    if s.stopped:
        print(f"bench: {s.stopped}", file=sys.stderr)
    return 1 if s.failed else 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from bench.config import load_suite
    from bench.rescore import rescore

    if not args.results.is_dir():  # before the suite is loaded and the data read
        problem = "is not a folder" if args.results.exists() else "does not exist"
        raise BenchError(f"results folder {args.results} {problem}")
    suite = load_suite(args.suite, preset=args.preset, seeds=args.seeds, model_path=args.sd_path,
                       lm_path=args.lm_path)
    s = rescore(suite, args.results, device=args.device, data_dir=args.data_dir, quiet=args.quiet)
    print(f"{suite.name} [{suite.preset}]: {s.line()}; results in {args.results}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench import leaderboard

    if not args.results.is_dir():
        problem = "is not a folder" if args.results.exists() else "does not exist"
        raise BenchError(f"results folder {args.results} {problem}")
    if args.output.is_dir():
        raise BenchError(f"--output {args.output} is a folder: give the file to write, "
                         f"e.g. {args.output / DEFAULT_LEADERBOARD}")
    if args.check:
        problems = leaderboard.provenance_problems(args.results)
        for line in problems[:10]:
            print(f"bench: {line}", file=sys.stderr)
        if problems:
            more = f" ({len(problems) - 10} more not shown)" if len(problems) > 10 else ""
            print(f"bench: {len(problems)} result(s) do not come from a clean tree at a known commit{more}: rerun "
                  "them from a clean checkout", file=sys.stderr)
        if not leaderboard.is_current(args.results, args.output):
            print(f"{args.output} is stale: run `bench leaderboard` and commit it", file=sys.stderr)
            return 1
        if problems:
            return 1
        print(f"{args.output} is up to date")
        return 0
    if not args.output.parent.is_dir():
        raise BenchError(f"--output {args.output}: its folder {args.output.parent} does not exist")
    try:
        leaderboard.write(args.results, args.output)
    except OSError as exc:  # a read-only file system, a full disk, no permission
        raise BenchError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from bench import leaderboard
    from bench import stats as paired

    if not args.results.is_dir():
        raise BenchError(f"results folder {args.results} does not exist")
    groups = leaderboard.collect(args.results)
    if not groups:
        raise BenchError(f"no results under {args.results}: run `bench run --suite NAME`")
    if args.suite is not None:
        suites = sorted({k[0] for k in groups})
        groups = {k: v for k, v in groups.items() if k[0] == args.suite}
        if not groups:
            raise BenchError(f"no results for suite {args.suite!r} under {args.results} (there are: {', '.join(suites)})")
    families = paired.compare(groups)
    if not families:
        raise BenchError(f"no paired seeds under {args.results}: a suite needs real_only or random_synthetic "
                         "and another strategy with the same seeds")
    for family, comparisons in families.items():
        effect = paired.DEFAULT_EFFECT_POINTS if args.effect is None else args.effect
        print(leaderboard.verdict_table(family, comparisons, effect).lstrip("\n"))
    print(leaderboard.wins_table(families).lstrip("\n"), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        problem = "is not a folder" if args.results.exists() else "does not exist"
        raise BenchError(f"results folder {args.results} {problem}")
    if args.out.exists() and not args.out.is_dir():
        raise BenchError(f"--out {args.out} is a file: give a folder to write index.html and figures/ into")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("bench report draws its figures with matplotlib: "
                         "pip install 'active-synthesis-bench[report]'") from None
    from bench import report

    try:
        written = report.build(args.results, args.out)
    except OSError as exc:  # a read-only file system, a full disk, a file where a folder goes
        raise BenchError(f"cannot write the report into {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {written[0]} and {len(written) - 1} figure(s) in {args.out / report.FIGURES}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from bench.registry import REGISTRIES

    reg = REGISTRIES[args.kind]
    for name in reg.names():
        if args.kind == "suites":
            detail = str(reg.get(name))
        else:
            detail = ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in reg.meta(name).items())
        print(f"{name}\t{detail}".rstrip())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.config import DEFAULT_PRESET, load_suite, read_suite_file
    from bench.results import read_result, validate_result

    path: Path = args.file
    if path.is_dir():
        raise BenchError(f"{path} is a folder: `bench validate` checks one file, a suite (.yaml) or a result (.json)")
    if not path.is_file():
        raise BenchError(f"{path} does not exist")
    if path.suffix == ".json":
        record = read_result(path)
        validate_result(record)
        print(f"{path}: valid result (schema v{record['schema_version']})")
        return 0
    if path.suffix not in (".yaml", ".yml"):
        raise BenchError(f"{path}: expected a suite (.yaml) or a result (.json)")
    declared = read_suite_file(path).get("presets") or {}
    if not isinstance(declared, dict) or not all(isinstance(p, str) for p in declared):
        raise BenchError(f"{path}: `presets` must be a mapping of preset name to overrides")
    presets = [DEFAULT_PRESET, *sorted(p for p in declared if p != DEFAULT_PRESET)]
    from bench.runner import expand_cells

    counts = [f"{p}: {len(expand_cells(load_suite(str(path), preset=p)))} cells" for p in presets]  # each must resolve
    print(f"{path}: valid suite ({'; '.join(counts)})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from bench.compare import compare, format_report

    report = compare(args.ref, args.new, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return report.exit_code


def cmd_fid(args: argparse.Namespace) -> int:
    from bench.device import resolve_device
    from bench.metrics.image_quality import image_set_scores, read_image_set

    device = str(resolve_device(args.device))
    need = 6 if args.prdc else 2  # prdc's k = 5 neighbours need 6 images a side; a covariance needs 2
    sets = [read_image_set(path, args.samples, minimum=need) for path in (args.a, args.b)]
    for path, images in zip((args.a, args.b), sets):
        sizes = sorted({im.shape[:2] for im in images})
        size = f"{sizes[0][1]}x{sizes[0][0]}" if len(sizes) == 1 else f"{len(sizes)} sizes"
        print(f"{path}: {len(images)} images ({size})")
    scores = image_set_scores(*sets, device=device, kid=args.kid, prdc=args.prdc)
    for name, value in scores.items():
        print(f"{name:<16} {value:.8g}")
    return 0


COMMANDS = {"run": cmd_run, "rescore": cmd_rescore, "leaderboard": cmd_leaderboard, "stats": cmd_stats,
            "report": cmd_report, "compare": cmd_compare, "fid": cmd_fid, "ls": cmd_ls, "validate": cmd_validate}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The harness's own warnings (a damaged cache entry, a read-only cache, a control that differs from
    the method in more than targeting) as one line, like its errors;
    other libraries' warnings keep Python's format."""
    from bench.errors import BenchWarning

    if issubclass(category, BenchWarning):
        print(f"bench: warning: {message}", file=file or sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished cells are saved, run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
