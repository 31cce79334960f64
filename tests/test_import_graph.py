"""The import graph of metamed, read from the source (function-level imports included).

Function-level imports hide back edges at import time; reading every ``import`` statement
finds them.  Two properties: the dataset registry imports no dataset (datasets depend on
the registry, never the reverse), and no module imports, directly or through others, a
module that imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import metamed

SRC = Path(metamed.__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def metamed_imports(path: Path) -> set[str]:
    """Modules of metamed that the file ``path`` imports anywhere (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("metamed")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("metamed"):
                # ``from pkg import sub`` imports the submodule when there is one.
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    as_path = SRC / Path(*sub.split("."))
                    is_module = as_path.with_suffix(".py").is_file() or as_path.is_dir()
                    found.add(sub if is_module else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (SRC / "metamed").rglob("*.py")}
    return {name: (metamed_imports(path) & set(modules)) - {name} for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first walk, as the list of modules around it."""
    cycles: list[list[str]] = []
    on_path: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        on_path.append(node)
        for dep in sorted(graph[node]):
            if dep in on_path:
                cycles.append([*on_path[on_path.index(dep) :], dep])
            elif dep not in done:
                visit(dep)
        on_path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return cycles


def test_registry_imports_no_dataset() -> None:
    """The registry knows no dataset: it imports only the cohort type and the errors."""
    imports = import_graph()["metamed.data.registry"]
    assert imports <= {"metamed.data.cohort", "metamed.errors"}, imports


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "metamed.data.datasets.uci_heart" in graph  # the walk sees the subpackages
    assert find_cycles(graph) == []


def test_find_cycles_sees_a_function_level_back_edge() -> None:
    # The shape the old data/sources.py and data/uci_heart.py had.
    graph = {"sources": {"uci_heart", "cohort"}, "uci_heart": {"sources"}, "cohort": set()}
    assert find_cycles(graph) == [["sources", "uci_heart", "sources"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
