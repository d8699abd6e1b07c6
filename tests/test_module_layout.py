"""The layout of the checker's rules and the torch modules: who may import what, and where the names are.

The shape rules live by family (`shapes_conv`, `shapes_resample`, `shapes_graph`, `shapes_basic`)
beside what they share (`shapes`) and what they fill (`report`), all torch-free; the torch modules
(`layers` and its `layers_*` siblings) import nothing from the checker.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convspec.kinds import BUILTIN_KINDS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "convspec"
RULE_MODULES = ("shapes_conv", "shapes_resample", "shapes_graph", "shapes_basic")
CHECKER_MODULES = ("shapes", "report", *RULE_MODULES)
TORCH_MODULES = sorted(path.stem for path in PACKAGE.glob("layers*.py"))


def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text())


def _relative_imports(module: str) -> set[str]:
    """The convspec modules `module` imports from (`from .x import ...` and `from . import x`)."""
    found = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


def _defined(module: str) -> set[str]:
    """The names `module` defines at its top level."""
    names = set()
    for node in _tree(module).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_torch_modules_are_the_layers_family():
    assert TORCH_MODULES == ["layers", "layers_kernels", "layers_resample", "layers_wiring"]


@pytest.mark.parametrize("module", TORCH_MODULES)
def test_torch_modules_import_only_geometry_and_each_other(module):
    assert _relative_imports(module) <= {"geometry", *TORCH_MODULES} - {module}


@pytest.mark.parametrize("module", CHECKER_MODULES)
def test_checker_modules_never_import_the_torch_modules(module):
    imported = _relative_imports(module)
    assert not imported & {*TORCH_MODULES, "graph", "builder"}, imported


def test_the_rules_and_reports_load_without_torch():
    modules = ", ".join(f"convspec.{name}" for name in CHECKER_MODULES)
    code = f"import sys, {modules}, convspec.kinds; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_built_in_rule_lives_in_its_family_module():
    homes = {kind.name: kind.rule.__module__.removeprefix("convspec.") for kind in BUILTIN_KINDS}
    assert set(homes.values()) == set(RULE_MODULES)
    assert homes["transposed"] == "shapes_conv" and homes["upsample"] == "shapes_resample"
    assert homes["residual"] == "shapes_graph" and homes["linear"] == "shapes_basic"


def _table_rows() -> dict[str, str]:
    """docs/architecture.md's module table: file name -> what the row says it holds."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        match = re.match(r"\| `(\w+)\.py` \| (.*) \|$", line)
        if match:
            rows[match[1]] = match[2]
    return rows


@pytest.mark.parametrize("module", [*CHECKER_MODULES, *TORCH_MODULES])
def test_the_module_table_names_what_the_module_holds(module):
    """Each function, class or constant of convspec that the row names (`rule_conv`, `SamePad`) is in that module or imported by it."""
    rows = _table_rows()
    assert module in rows, f"docs/architecture.md has no row for {module}.py"
    everywhere = set().union(*(_defined(path.stem) for path in PACKAGE.glob("*.py")))
    named = {token for token in re.findall(r"`(\w+)(?:\(\))?`", rows[module]) if "_" in token or token[0].isupper()}
    here = _defined(module) | {
        alias.asname or alias.name for node in ast.walk(_tree(module)) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert (named & everywhere) - here == set()
    assert named & _defined(module), f"the row of {module}.py names nothing it defines"
