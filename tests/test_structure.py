"""The package's shape: one level of packages by side, data flowing one way.

    cli ──> training ──> ops ──> core
      └───> scoring  ───┘

No module imports, at any depth and from inside functions too, a module of a package to
its left, nor one that imports it back; only the CLI knows exit codes; private APIs of
other libraries are used only in core/internals.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmnist"
# What each side may import besides itself.
ALLOWED = {
    "cli": {"training", "scoring", "ops", "core"},
    "training": {"ops", "core"},
    "scoring": {"ops", "core"},
    "ops": {"core"},
    "core": set(),
}


def modules() -> dict[str, Path]:
    """'training.sweep' -> its file, for every module of the package ('__init__' for the
    package's own, 'cli' for a side's __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The fmnist modules a file imports anywhere in it, as keys of modules()."""
    found = set()

    def add(dotted: str) -> None:  # 'fmnist.training.sweep' -> 'training.sweep'
        name = dotted.removeprefix("fmnist").lstrip(".")
        found.add(name or "__init__")

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "fmnist":
                continue
            for a in node.names:
                inner = f"{node.module}.{a.name}".removeprefix("fmnist.")
                add(node.module + "." + a.name if inner in known else node.module)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "fmnist":
                    add(a.name)
    return found


def graph() -> dict[str, set[str]]:
    known = set(modules())
    return {name: imports_of(path, known) - {name} for name, path in modules().items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def side(module: str) -> str:
    return module.split(".")[0]


def test_the_graph_sees_function_level_imports():
    edges = graph()
    assert "training.sweep" in edges["cli.train"]  # imported inside the command
    assert "scoring.score" in edges["cli.score"]


def test_no_import_cycle_inside_the_package():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_every_module_lives_in_a_side_package():
    loose = [m for m in modules() if "." not in m and m not in ALLOWED and m != "__init__"]
    assert loose == []


@pytest.mark.parametrize("from_side", sorted(ALLOWED))
def test_data_flows_one_way(from_side):
    wrong = {
        m: sorted(t for t in targets if side(t) not in ALLOWED[from_side] | {from_side, "__init__"})
        for m, targets in graph().items()
        if side(m) == from_side
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_the_direction_check_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from fmnist.cli.common import fail\n")
    assert imports_of(bad, set(modules())) == {"cli.common"}
    assert side("cli.common") not in ALLOWED["core"]


def test_only_the_cli_knows_exit_codes():
    users = [
        m
        for m, targets in graph().items()
        if side(m) != "cli" and any(side(t) == "cli" for t in targets)
    ]
    assert users == []


def private_imports(path: Path) -> set[str]:
    """Modules of other packages with a private part (`ray._raylet`, `typer._click`) or
    Ray's generated protocol stubs that a file imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = (
            [node.module]
            if isinstance(node, ast.ImportFrom) and node.module
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            parts = name.split(".")
            private = any(p.startswith("_") for p in parts[1:]) or name.startswith(
                "ray.core.generated"
            )
            if parts[0] not in ("fmnist", "__future__") and private:
                found.add(name)
    return found


def test_private_apis_are_used_only_in_internals():
    users = {
        name: private_imports(p)
        for name, p in modules().items()
        if name != "core.internals" and private_imports(p)
    }
    assert users == {}
    assert private_imports(PACKAGE / "core" / "internals.py") >= {
        "typer._click.exceptions",
        "ray._raylet",
    }


# Names with a leading underscore that are documented public API.
DOCUMENTED = {"os._exit"}


def private_uses(source: str) -> set[str]:
    """Private attributes read off anything but `self`/`cls` (`ray._private`,
    `queue._actor`) and private keywords in calls (`ray.init(_node_ip_address=...)`):
    the private APIs that no import shows. Our own modules' private names count too:
    what another module needs is not private."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and ast.unparse(node.value) not in ("self", "cls")
            and ast.unparse(node) not in DOCUMENTED
        ):
            found.add(ast.unparse(node))
        elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_"):
            found.add(f"{node.arg}=")
    return found


def test_private_attributes_and_keywords_are_used_only_in_internals():
    users = {
        name: private_uses(p.read_text())
        for name, p in modules().items()
        if name != "core.internals" and private_uses(p.read_text())
    }
    assert users == {}
    assert "_node_ip_address=" in private_uses((PACKAGE / "core" / "internals.py").read_text())


def test_private_use_check_sees_attributes_and_keywords():
    code = "import ray\nray.init(_node_ip_address='1')\nx = ray._private.worker\nself._ok = 1\n"
    assert private_uses(code) == {"_node_ip_address=", "ray._private"}
