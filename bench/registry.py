"""One generic Registry class and its instances (data sets, task models, generators, strategies,
metrics, suites), plus the entry-point loader through which packages, built-in or external,
register their entries.

A registry maps an explicit string name to an object (usually a class or a function) and keeps its
typed capability record (bench.api: modalities, version, ...), built from the decorator's keywords.
Registering a name twice, an unknown capability keyword or an object without the methods of its
contract is an error at import time; asking for an unknown name raises BenchError that lists what
exists and suggests the closest names. `build(name, params)` is the one path from a suite's
parameters to a component: unknown or badly typed parameters are a one-line BenchError.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import typing
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterator, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from bench.api import CAPABILITIES, CONTRACTS
from bench.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of plug-ins of one kind (e.g. "strategy")."""

    def __init__(self, kind: str, caps: type | None = None, contract: tuple[str, ...] = (),
                 groups: tuple[str, ...] | None = None) -> None:
        self.kind = kind
        self._groups = groups  # the entry-point groups a lookup loads first; None: all of them
        self._caps_type = caps  # a frozen dataclass of the capabilities an entry declares; None: free-form
        self._contract = contract  # methods an entry must have
        self._entries: dict[str, T] = {}
        self._meta: dict[str, Any] = {}

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
        missing = [m for m in self._contract if not callable(getattr(obj, m, None))]
        if missing:
            raise ValueError(f"{self.kind} {name!r} ({obj!r}) lacks {', '.join(missing)} of the {self.kind} contract (bench.api)")
        if self._caps_type is not None:
            try:
                caps = self._caps_type(**meta)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.kind} {name!r}: bad capabilities {meta}: {exc}") from None
        else:
            caps = dict(meta)
        self._entries[name] = obj
        self._meta[name] = caps

    def get(self, name: str) -> T:
        load_plugins(self._groups)
        try:
            return self._entries[name]
        except KeyError:
            raise BenchError(self.unknown_message(name)) from None

    def caps(self, name: str) -> Any:
        """The entry's typed capability record (bench.api), e.g. STRATEGIES.caps("smote").synthesises."""
        self.get(name)
        return self._meta[name]

    def meta(self, name: str) -> dict[str, Any]:
        """The capability record as a dict (for listings)."""
        caps = self.caps(name)
        return dataclasses.asdict(caps) if dataclasses.is_dataclass(caps) else dict(caps)

    def build(self, name: str, params: dict[str, Any]) -> Any:
        """`name`'s class built with the keyword parameters `params`, each checked against the
        class's type annotations first: an unknown or badly typed parameter, or one the class itself
        refuses (ValueError in __post_init__), is a one-line BenchError naming the entry."""
        cls = self.get(name)
        what = f"{self.kind} {name!r}"
        if not isinstance(params, dict):
            raise BenchError(f"{what}: parameters must be a mapping, got {type(params).__name__}")
        params = _checked_params(cls, params, what)
        try:
            return cls(**params)
        except (TypeError, ValueError) as exc:
            raise BenchError(f"{what}: bad parameters {params}: {_one_line(exc)}") from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}"

    def names(self) -> list[str]:
        load_plugins(self._groups)
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins(self._groups)
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


def _registry(kind: str, groups: tuple[str, ...] | None = None) -> Registry[Any]:
    return Registry(kind, caps=CAPABILITIES[kind], contract=CONTRACTS.get(kind, ()), groups=groups)


DATASETS: Registry[Any] = _registry("dataset")
MODELS: Registry[Any] = _registry("model")
GENERATORS: Registry[Any] = _registry("generator")
STRATEGIES: Registry[Any] = _registry("strategy")
METRICS: Registry[Any] = _registry("metric")
# name -> path of the suite's YAML file. Suites are looked up in their own entry-point group alone, so that
# naming a suite, or mistyping one, imports no data set, model or library (about a second, not twenty on
# a loaded 2-core machine): a package registers its suites through `bench.suites`.
SUITES: Registry[Any] = _registry("suite", groups=("bench.suites",))

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

_loaded: set[str] = set()  # the groups whose entry points this process has imported


def load_plugins(groups: tuple[str, ...] | None = None) -> None:
    """Import every module named by an entry point of `groups` (default: all the groups above), each
    group once per process."""
    for group in ENTRY_POINT_GROUPS if groups is None else groups:
        if group in _loaded:
            continue
        _loaded.add(group)
        for ep in entry_points(group=group):
            try:
                ep.load()
            except Exception as exc:  # a broken plug-in must say which one it is
                _loaded.discard(group)
                raise BenchError(
                    f"plug-in {ep.name!r} ({ep.value}) of group {group} failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any] | None:
    """A component's keyword parameters and their resolved annotations, `Annotated` constraints kept (Any
    where one cannot be resolved): a dataclass's init fields, or else the keyword parameters of the class's
    own `__init__` (a data set's loader). None where neither says (a function, an `__init__` that takes
    *args or **kwargs): the constructor alone checks its parameters."""
    if dataclasses.is_dataclass(cls):
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # an annotation naming something imported only for type checking
            hints = {}
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}
    init = getattr(cls, "__init__", None) if isinstance(cls, type) else None
    if init is None or init is object.__init__:
        return None
    try:
        parameters = list(inspect.signature(init).parameters.values())[1:]  # less self
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in parameters):
        return None
    try:
        hints = typing.get_type_hints(init, include_extras=True)
    except Exception:
        hints = {}
    return {p.name: hints.get(p.name, Any) for p in parameters}


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any) -> TypeAdapter:
    # allow_inf_nan=False: a float parameter is finite (.inf or .nan is "Input should be a finite number")
    return TypeAdapter(tp, config=ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False))


def _checked_params(cls: type, params: dict[str, Any], what: str) -> dict[str, Any]:
    """`params` validated against the class's annotations (pydantic, lax mode: 3 for a float is
    fine, "wide" for an int is not), with the constraints declared beside them (`Annotated[float,
    Field(ge=0, lt=1)]`) and every float finite. A value pydantic converted (a YAML list for a tuple
    field, "5" for an int) is passed converted; one it accepted as equal (3 for 3.0) keeps the form the
    suite gave, so that the parameter record stays what the user wrote."""
    fields = _field_types(cls)
    if fields is None:
        return params
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise BenchError(f"{what}: unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"known: {', '.join(fields) or '(none)'}")
    out = dict(params)
    for key, value in params.items():
        try:
            checked = _adapter(fields[key]).validate_python(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            entry = f", entry {'.'.join(str(p) for p in err['loc'])}" if err["loc"] else ""  # of a list or mapping
            raise BenchError(f"{what}: parameter {key}={_short(value)}{entry}: {err['msg']}") from None
        except Exception:  # an annotation pydantic cannot build a validator for: the constructor decides
            continue
        if isinstance(value, bool) and not isinstance(checked, bool):  # lax pydantic reads true as 1
            raise BenchError(f"{what}: parameter {key}={value!r}: Input should be a number, not true/false")
        try:
            same = bool(checked == value)
        except Exception:  # arrays compare element-wise
            same = checked is value
        if not same:
            out[key] = checked
    return out


def _short(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters (an error message is one line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def param_record(obj: Any) -> dict[str, Any]:
    """A component's parameters as the cell record and the generator cache key hold them: fields marked
    omit_if_none are left out while None, so that a parameter added later leaves existing hashes and keys
    as they were."""
    if not dataclasses.is_dataclass(obj):
        return dict(vars(obj))
    record = dataclasses.asdict(obj)
    for f in dataclasses.fields(obj):
        if f.metadata.get("omit_if_none") and record.get(f.name) is None:
            del record[f.name]
    return record
