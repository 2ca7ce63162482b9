"""README's "Adding a baseline" examples run as printed.

Each strategy example (a ```python block that registers one) is written to a module in a tmp folder and imported from there (its
`@STRATEGIES.register` runs; the repository is not edited), then its strategy runs in the section's own
suite file (toy_pockets, an in-code data set: 3 training examples per class, an MLP, seconds) through
`bench run --suite my.yaml`, as the README says to try a new strategy. The registrations are removed after."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.registry import STRATEGIES
from bench.results import Result, iter_results

REPO = Path(__file__).resolve().parents[1]


def section_blocks(heading: str) -> list[tuple[str, str]]:
    """The fenced blocks of README's section `heading` (up to the next "## " heading) as (language, text),
    as printed."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"^```(\w+)\n(.*?)^```$", text[start:end if end != -1 else None], re.M | re.S)


BLOCKS = section_blocks("## Adding a baseline")
EXAMPLES = [code for lang, code in BLOCKS if lang == "python" and "@STRATEGIES.register" in code]
[SUITE] = [code for lang, code in BLOCKS if lang == "yaml"]


def test_the_section_has_its_examples_and_says_how_to_run_them():
    assert len(EXAMPLES) == 2, "README's 'Adding a baseline' section lost an example"
    assert any(lang == "bash" and "bench run --suite path/to/my.yaml" in code for lang, code in BLOCKS)
    assert "{name: my_baseline, params: {epochs_scale: 2}}" in SUITE


def test_the_printed_init_edit_is_the_real_import_line_plus_the_new_module():
    [edit] = [code.strip() for lang, code in BLOCKS if lang == "python" and code.startswith("from . import")]
    [line] = [ln for ln in (REPO / "baselines" / "__init__.py").read_text().splitlines() if ln.startswith("from . import")]
    modules = line.removeprefix("from . import ").split("  #")[0].split(", ")
    assert edit == line.replace(", ".join(modules), ", ".join(sorted(modules + ["my_baseline"])))


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_a_readme_example_runs_as_printed(index, tmp_path, monkeypatch):
    code = EXAMPLES[index]
    [name] = re.findall(r'@STRATEGIES\.register\("([a-z_]+)"', code)
    assert name not in STRATEGIES._entries  # a throwaway name, not a built-in one
    module = f"readme_example_{index}"
    (tmp_path / f"{module}.py").write_text(code)
    spec = importlib.util.spec_from_file_location(module, tmp_path / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module, mod)  # dataclasses looks its module up while decorating
    try:
        spec.loader.exec_module(mod)  # registers the strategy
        suite = tmp_path / "my.yaml"  # the printed suite; the second example in place of the first
        suite.write_text(SUITE if name == "my_baseline" else
                         SUITE.replace("{name: my_baseline, params: {epochs_scale: 2}}", name))
        out = tmp_path / "out"
        assert main(["run", "--suite", str(suite), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
        results = {r.strategy: r for r in (Result(rec, path) for path, rec in iter_results(out))}
        assert set(results) == {"real_only", name}
        assert results[name].ok, results[name].record.get("error")
        assert results[name].value("accuracy") is not None
    finally:
        STRATEGIES._entries.pop(name, None)
        STRATEGIES._meta.pop(name, None)
