"""The argument types the commands share (argparse `type=` functions) and the suite options of `bench
run`, `bench rescore` and `bench validate` (`--set`, `--sd-path`, `--lm-path`).

A type function raises argparse.ArgumentTypeError with a one-line message naming the flag; the parser
(bench.cli) turns it into `bench: error: ...` and exit code 2. Nothing here imports more than the
standard library (and yaml, when a `--set` value is read), so a bad argument is refused at once.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Callable

DEFAULT_RESULTS = Path("results")  # the committed results, which the reading commands read by default
# Where `bench run` writes unless told otherwise: outside the committed results (and ignored by git), so that
# a habitual `bench run --suite smoke` never changes them; committing results is `--out results`.
DEFAULT_RUNS = Path("runs")
MODEL_PATH_KEY = "synthetic.generator.params.model_path"  # what --sd-path and --lm-path set
# KEY of --set: dot-separated segments (mapping keys, list indexes, or list entries' ids or names)
OVERRIDE_KEY = re.compile(r"[^.\s=]+(\.[^.\s=]+)*")


def seed_list(text: str) -> list[int]:
    """--seeds: comma-separated, distinct, non-negative integers, e.g. 0,1,2 (no empty item: `0,1,` is a
    typo, not two seeds)."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds takes non-negative integers, got {text!r}")
    if len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds names a seed twice: {text!r}")
    return seeds


def out_folder(text: str) -> Path:
    """--out: a folder path; an empty one (which would mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("--out takes a folder, got an empty path")
    return Path(text)


def positive(flag: str, unit: str) -> Callable[[str], float]:
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


def whole(flag: str) -> Callable[[str], int]:
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


def at_least_zero(flag: str, unit: str) -> Callable[[str], float]:
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


def tolerance(text: str) -> float:
    """--tolerance: a finite relative tolerance >= 0 (0: exact everywhere)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"--tolerance takes a relative tolerance >= 0 (e.g. 1e-4), got {text!r}")
    return value


def image_count(text: str) -> int:
    """--samples: a whole number of images >= 2 (a covariance needs two)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"--samples takes a whole number of images >= 2, got {text!r}")
    return value


def override(text: str) -> tuple[str, Any]:
    """--set KEY=VALUE: (KEY, VALUE read as YAML: 3 is an int, 0.5 a float, true a bool, null None,
    [0, 1] a list, anything else text). Whether KEY exists in the suite is load_suite's check."""
    key, sep, value = text.partition("=")
    if not sep or not OVERRIDE_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, KEY a dotted path into the suite "
                                         f"(e.g. train.epochs=3), got {text!r}")
    import yaml  # only when --set is given

    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not a YAML value"
        raise argparse.ArgumentTypeError(f"--set {key}: VALUE {value!r} is not a YAML value ({problem})") from None


SET_HELP = ("override one setting of the suite, after the preset is applied (repeatable; the last of one KEY "
            "wins): KEY is a dotted path into the suite's YAML, where a list's entry is named by its id, name or "
            "index (e.g. train.epochs=3, strategies.ID.params.NAME=2, budgets.0=50, "
            f"{MODEL_PATH_KEY}=/models/sd21); VALUE is read as YAML (3, 0.5, true, null, [0, 1], text). "
            "It changes the cells' config and so their hash")


def add_suite_options(parser: argparse.ArgumentParser, as_given: bool = False) -> None:
    """--set, --sd-path and --lm-path; `as_given`: the help of a command that must repeat what `bench run`
    was given (rescore)."""
    parser.add_argument("--set", dest="overrides", type=override, action="append", metavar="KEY=VALUE",
                        help="as given to `bench run` (part of the cells' config)" if as_given else SET_HELP)
    if as_given:
        parser.add_argument("--sd-path", metavar="FOLDER", help="as given to `bench run` (part of the cells' config)")
        parser.add_argument("--lm-path", metavar="FOLDER", help="as given to `bench run` (part of the cells' config)")
        return
    parser.add_argument("--sd-path", metavar="FOLDER", help="local Stable Diffusion weights (a diffusers folder) "
                        "for a suite whose generator loads local weights; short for "
                        f"--set {MODEL_PATH_KEY}=FOLDER")
    parser.add_argument("--lm-path", metavar="FOLDER", help="a local instruction-tuned language model (a "
                        "transformers folder, e.g. an 8B model for a GPU) used by the suite's text generator instead "
                        f"of its default model; short for --set {MODEL_PATH_KEY}=FOLDER; nothing is downloaded")


def suite_overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The --set pairs of a command line, in order, as load_suite's `overrides`."""
    return list(getattr(args, "overrides", None) or [])
