"""The package's shape: data flows one way, so no module of fmnist/ imports, at any depth
and from inside functions too, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fmnist"


def imports_of(path: Path) -> set[str]:
    """The fmnist modules a file imports anywhere in it ('fmnist' is the package's own
    __init__, for names imported from it that are not modules)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "fmnist":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(a.name if a.name in modules else "__init__" for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "fmnist" and len(parts) > 1:
                    found.add(parts[1])
    return found


def graph() -> dict[str, set[str]]:
    return {p.stem: imports_of(p) - {p.stem} for p in PACKAGE.glob("*.py")}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_inside_the_package():
    edges = graph()
    assert "cli" in edges and "score" in edges["cli"]  # the graph sees function-level imports
    assert cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_only_the_cli_knows_exit_codes():
    users = [p.name for p in PACKAGE.glob("*.py")
             if p.stem != "cli" and "cli" in imports_of(p)]
    assert users == []


def private_imports(path: Path) -> set[str]:
    """Modules of other packages with a private part (`ray._raylet`, `typer._click`) or
    Ray's generated protocol stubs that a file imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module \
            else [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            private = any(p.startswith("_") for p in parts[1:]) \
                or name.startswith("ray.core.generated")
            if parts[0] not in ("fmnist", "__future__") and private:
                found.add(name)
    return found


def test_private_apis_are_used_only_in_internals():
    users = {p.name: private_imports(p) for p in PACKAGE.glob("*.py")
             if p.stem != "internals" and private_imports(p)}
    assert users == {}
    assert private_imports(PACKAGE / "internals.py") >= {"typer._click.exceptions",
                                                         "ray._raylet"}
