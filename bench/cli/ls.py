"""`bench ls KIND`: the registered entries of one kind, each with its capabilities."""
from __future__ import annotations

import argparse

KINDS = ("suites", "datasets", "models", "generators", "strategies", "metrics")  # bench.registry.REGISTRIES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ls = subparsers.add_parser("ls", help="list registered entries")
    ls.add_argument("kind", choices=list(KINDS))


def cmd(args: argparse.Namespace) -> int:
    from bench.registry import REGISTRIES

    reg = REGISTRIES[args.kind]
    for name in reg.names():
        if args.kind == "suites":
            detail = str(reg.get(name))
        else:
            detail = ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                               for k, v in reg.meta(name).items())
        print(f"{name}\t{detail}".rstrip())
    return 0
