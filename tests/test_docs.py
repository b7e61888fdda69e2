"""docs/design.md cannot drift from the tree: every module of fmnist/ stands in its
layout, and every test file in its test table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = (ROOT / "docs" / "design.md").read_text()


def layout_block() -> str:
    return DESIGN.split("## Layout", 1)[1].split("```", 2)[1]


def listed_modules(block: str) -> set[str]:
    """'training/sweep.py' for each module line of the layout block, by indentation."""
    found, package = set(), None
    for line in block.splitlines():
        m = re.match(r"^(\s*)([a-z_]+(?:\.py|/))\s", line + " ")
        if not m:
            continue
        depth, name = len(m.group(1)), m.group(2)
        if depth == 2 and name.endswith("/"):
            package = name
        elif depth == 2:
            package, _ = None, found.add(name)
        elif depth == 4 and package and name.endswith(".py"):
            found.add(package + name)
    return found


def test_design_layout_lists_every_module():
    on_disk = {str(p.relative_to(ROOT / "fmnist")) for p in (ROOT / "fmnist").rglob("*.py")
               if not (p.name == "__init__.py" and p.parent != ROOT / "fmnist")}
    listed = listed_modules(layout_block())
    assert on_disk - listed == set(), "add these to docs/design.md's layout"
    assert listed - on_disk == set(), "docs/design.md's layout names modules that are gone"


def test_the_layout_reader_sees_a_missing_module():
    assert listed_modules("  cli/ x\n    main.py y\n  data.py z\n") == {"cli/main.py", "data.py"}


def test_design_test_table_lists_every_test_file():
    missing = [p.name for p in sorted((ROOT / "tests").glob("test_*.py"))
               if f"`tests/{p.name}`" not in DESIGN]
    assert missing == []
