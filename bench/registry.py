"""One generic Registry class and its instances (data sets, task models, generators, strategies,
metrics, suites), plus the entry-point loader through which packages, built-in or external,
register their entries.

A registry maps an explicit string name to an object (usually a class or a function) and keeps a
small metadata dict per entry. Registering a name twice is an error; asking for an unknown name
raises BenchError that lists what exists and suggests the closest names.
"""
from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterator, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of plug-ins of one kind (e.g. "strategy")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: `@STRATEGIES.register("real_only")` over a class or function."""

        def decorator(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return decorator

    def add(self, name: str, obj: T, **meta: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            if self._entries[name] is obj or (isinstance(obj, str) and self._entries[name] == obj):
                # the same module imported twice (a suite path registered again)
                return
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name]!r})")
        self._entries[name] = obj
        self._meta[name] = dict(meta)

    def get(self, name: str) -> T:
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise BenchError(self.unknown_message(name)) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}"

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


DATASETS: Registry[Any] = Registry("dataset")
MODELS: Registry[Any] = Registry("model")
GENERATORS: Registry[Any] = Registry("generator")
STRATEGIES: Registry[Any] = Registry("strategy")
METRICS: Registry[Any] = Registry("metric")
SUITES: Registry[Any] = Registry("suite")  # name -> path of the suite's YAML file

REGISTRIES: dict[str, Registry[Any]] = {
    "datasets": DATASETS,
    "models": MODELS,
    "generators": GENERATORS,
    "strategies": STRATEGIES,
    "metrics": METRICS,
    "suites": SUITES,
}

# Entry-point groups scanned for plug-ins. Loading an entry point imports its module, whose
# decorators fill the registries; the group only tells where to look, any module may register
# entries of any kind. The built-in packages register through these same groups (see pyproject.toml).
ENTRY_POINT_GROUPS = (
    "bench.datasets",
    "bench.models",
    "bench.generators",
    "bench.baselines",
    "bench.methods",
    "bench.strategies",
    "bench.metrics",
    "bench.suites",
)

_loaded = False


def load_plugins() -> None:
    """Import every module named by an entry point of the groups above, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for group in ENTRY_POINT_GROUPS:
        for ep in entry_points(group=group):
            try:
                ep.load()
            except Exception as exc:  # a broken plug-in must say which one it is
                _loaded = False
                raise BenchError(
                    f"plug-in {ep.name!r} ({ep.value}) of group {group} failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
