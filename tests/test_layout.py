"""The layout's rules, read from the files (ARCHITECTURE.md): every import names the file it reads, the core
(bench/) imports no plug-in folder, plug-in folders import one another only along the declared edges, no
import cycle exists anywhere (imports inside functions and under TYPE_CHECKING count), and the core names
no built-in plug-in in its code.

The import graph is built with an AST walk over the source files, so it is the graph a reader (or a tool)
sees: a relative import resolves against the file's folder, `bench.X` against bench/.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "bench"
PLUGIN_FOLDERS = ("benchmarks", "baselines", "method", "metrics")
# The installed package of each folder (pyproject.toml's package-dir): plug-in folders are sub-packages of
# `bench`, so that their generic names collide with no other distribution.
PACKAGE = {CORE: "bench", **{f: f"bench.{f}" for f in PLUGIN_FOLDERS}}
# Plug-in folder -> plug-in folders it may import (every plug-in folder may import the core). Baselines
# reuse the method's loop and generators (random synthesis is active synthesis without the targeting); the
# text metrics embed texts with the text models' encoder.
DECLARED_EDGES = {
    "benchmarks": set(),
    "baselines": {"method"},
    "method": set(),
    "metrics": {"benchmarks"},
}


def source_files(root: Path) -> list[Path]:
    return sorted(p for folder in PACKAGE for p in (root / folder).rglob("*.py"))


def module_name(root: Path, path: Path) -> str:
    """The module `path` installs as: bench/runner.py -> bench.runner, method/generators/dp_gan.py ->
    bench.method.generators.dp_gan, baselines/__init__.py -> bench.baselines."""
    folder, *rest = path.relative_to(root).with_suffix("").parts
    parts = [PACKAGE[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Imports(ast.NodeVisitor):
    """Every import of one file as (absolute module name, names imported from it, the import as written)."""

    def __init__(self, package: str) -> None:
        self.package = package  # the package relative imports resolve against
        self.found: list[tuple[str, list[str], str]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, [], f"import {alias.name}"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = [a.name for a in node.names]
        written = f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}"
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        self.found.append((module, names, written))


def read_imports(root: Path) -> dict[Path, list[tuple[str, list[str], str]]]:
    out = {}
    for path in source_files(root):
        name = module_name(root, path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        visitor = Imports(package)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        out[path] = visitor.found
    return out


def file_graph(root: Path) -> dict[Path, set[Path]]:
    """File -> the project files it imports (a `from package import module` names the module's file)."""
    files = {module_name(root, p): p for p in source_files(root)}
    graph: dict[Path, set[Path]] = {}
    for path, imports in read_imports(root).items():
        targets = set()
        for module, names, _ in imports:
            submodules = [files[f"{module}.{n}"] for n in names if f"{module}.{n}" in files]
            if submodules:  # `from package import module, ...`
                targets.update(submodules)
            elif module in files:  # `import module` or `from module import name, ...`
                targets.add(files[module])
        graph[path] = targets - {path}
    return graph


def folder_of(root: Path, path: Path) -> str:
    return path.relative_to(root).parts[0]


def import_problems(root: Path) -> list[str]:
    """Imports that name a path that is not on disk, and edges between folders that are not declared."""
    problems = []
    for path, imports in read_imports(root).items():
        where = path.relative_to(root)
        for module, _, written in imports:
            if any(written.startswith(f"{kw} bench.{f}") for f in PLUGIN_FOLDERS for kw in ("from", "import")):
                problems.append(f"{where}: `{written}` names no file (bench/{module.split('.')[1]} does not "
                                "exist): import plug-in modules relatively")
    for path, targets in file_graph(root).items():
        src = folder_of(root, path)
        for target in targets:
            dst = folder_of(root, target)
            if src == dst or dst == CORE:
                continue
            if src == CORE or dst not in DECLARED_EDGES[src]:
                problems.append(f"{path.relative_to(root)} -> {target.relative_to(root)}: {src}/ may not import {dst}/")
    return problems


def cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """The strongly connected components of more than one file (Tarjan's algorithm, iteratively)."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# Strings of the core that equal a plug-in's name without naming the plug-in: the training recipe's own
# model-selection criterion (validation accuracy, computed by bench.training), and `bench fid`, the command
# that scores two image sets with the image metrics it is the front end of (through the registry).
NOT_A_PLUGIN = {
    ("bench/config.py", "accuracy"),
    ("bench/training.py", "accuracy"),
    ("bench/cli/__init__.py", "fid"),
    *{("bench/cli/fid.py", m) for m in ("fid", "kid", "coverage", "density", "one_nn_accuracy")},
}


def plugin_names() -> set[str]:
    """Every built-in plug-in's registered name (strategies, generators, data sets, models, metrics)."""
    from bench.registry import DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES

    return {n for r in (DATASETS, GENERATORS, METRICS, MODELS, STRATEGIES) for n in r.names()}


def named_plugins(root: Path, names: set[str]) -> list[str]:
    """String constants in the core's code (docstrings left out) that equal a built-in plug-in's name."""
    found = []
    for path in sorted((root / CORE).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            where = str(path.relative_to(root))
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                    and id(node) not in docstrings and (where, node.value) not in NOT_A_PLUGIN):
                found.append(f"{where}:{node.lineno}: {node.value!r}")
    return found


def test_every_import_names_its_file_and_follows_the_declared_edges():
    assert import_problems(ROOT) == []


def cli_imports(root: Path) -> list[str]:
    """Core modules under the command line (bench/ except bench/cli/ and bench/__main__.py) that import
    bench/cli/: the command line is the outermost layer; what a command decides (which folders it reads)
    it passes in."""
    cli = root / CORE / "cli"
    return [f"{path.relative_to(root)} -> {target.relative_to(root)}" for path, targets in file_graph(root).items()
            if folder_of(root, path) == CORE and cli not in path.parents and path.name != "__main__.py"
            for target in targets if cli in target.parents]


def test_the_core_under_the_command_line_never_imports_it(tmp_path):
    assert cli_imports(ROOT) == []
    (tmp_path / "bench" / "cli").mkdir(parents=True)
    for folder in PACKAGE:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "bench" / "cli" / "__init__.py").write_text("")
    (tmp_path / "bench" / "cli" / "arguments.py").write_text("DEFAULT = 1\n")
    (tmp_path / "bench" / "runner.py").write_text("from bench.cli.arguments import DEFAULT\n")
    assert cli_imports(tmp_path) == ["bench/runner.py -> bench/cli/arguments.py"]


def test_no_import_cycle_anywhere():
    assert [[str(p.relative_to(ROOT)) for p in c] for c in cycles(file_graph(ROOT))] == []


def test_the_core_names_no_built_in_plugin():
    assert named_plugins(ROOT, plugin_names()) == []


def test_the_rules_see_what_they_forbid(tmp_path):
    """The checks find a plug-in import written with the installed name, a core import of a plug-in, an
    undeclared plug-in edge, a cycle through a function-level import and a plug-in name in the core."""
    for folder in PACKAGE:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "bench" / "a.py").write_text("def f():\n    from bench import b\n")
    (tmp_path / "bench" / "b.py").write_text("from bench.a import f\nREFERENCE = 'real_only'\n")
    (tmp_path / "bench" / "c.py").write_text("from bench.metrics import m\n")
    (tmp_path / "metrics" / "m.py").write_text("from ..baselines import s\n")
    (tmp_path / "baselines" / "s.py").write_text("from bench.method import x\n")
    (tmp_path / "method" / "x.py").write_text("")
    problems = import_problems(tmp_path)
    assert any("baselines/s.py: `from bench.method import x` names no file" in p for p in problems)
    assert any(p.startswith("bench/c.py -> metrics/m.py: bench/ may not import metrics/") for p in problems)
    assert any(p.startswith("metrics/m.py -> baselines/s.py: metrics/ may not import baselines/") for p in problems)
    assert [[p.name for p in c] for c in cycles(file_graph(tmp_path))] == [["a.py", "b.py"]]
    assert named_plugins(tmp_path, {"real_only"}) == ["bench/b.py:2: 'real_only'"]


def test_pyproject_installs_every_package_folder():
    """setuptools installs the packages pyproject.toml lists (the plug-in folders are mapped, so they cannot
    be found automatically): every folder with an __init__.py is listed, and nothing else."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {module_name(ROOT, p) for p in source_files(ROOT) if p.name == "__init__.py"}
    assert listed == on_disk


@pytest.mark.parametrize("folder", PLUGIN_FOLDERS)
def test_every_plugin_folder_is_a_package_of_the_declared_name(folder):
    assert (ROOT / folder / "__init__.py").exists()
    assert module_name(ROOT, ROOT / folder / "__init__.py") == PACKAGE[folder]
