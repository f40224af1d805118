"""pddlite's modules import each other in one direction only: no module imports one that imports it back.

The graph is read from the source (every ``import`` and ``from ... import``, at module level or
inside a function, and every ``importlib.import_module("pddlite...")``), so a cycle hidden in a
function body counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pddlite"


def module_files() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The pddlite modules that ``module`` (whose source is ``path``) imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        found.update(n for n in names if n in known and n != module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle that a depth-first walk meets (each as its list of modules, first = last)."""
    state: dict[str, int] = {}
    path: list[str] = []
    out: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                out.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return out


def test_the_walker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_walker_reads_relative_and_dynamic_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    src = tmp_path / "pkg" / "a.py"
    src.write_text("from .b import x\nfrom . import c\nimport importlib\n"
                   "def f():\n    importlib.import_module('pkg.d')\n")
    known = {m: src for m in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d")}
    assert imported("pkg.a", src, known) == {"pkg.b", "pkg.c", "pkg.d"}


def test_no_module_of_pddlite_imports_one_that_imports_it_back():
    known = module_files()
    assert "pddlite.cli" in known and "pddlite.baselines.egbad" in known
    graph = {m: imported(m, p, known) for m, p in known.items()}
    # a module that imported the package itself would import everything its __init__ does
    assert not [m for m, deps in graph.items() if "pddlite" in deps], "import from the module, not the package"
    found = cycles(graph)
    if found:
        pytest.fail("import cycles: " + "; ".join(" -> ".join(c) for c in found))
