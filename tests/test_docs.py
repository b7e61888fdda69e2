"""The docs cannot drift from the tree: docs/design.md names every module of fmnist/ in
its layout and every test file in its test table; docs/sweeps.md documents exactly the
sweep-file keys the parser accepts; docs/cli.md every option of every command; the
README stays short; every relative link in README.md and docs/*.md resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = (ROOT / "docs" / "design.md").read_text()
# A user page: set-up, usage, outputs, exit codes, and the few figures a user decides on
# (photo kinds, calibration); reference and design go to docs/.
README_MAX_LINES = 200


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
    on_disk = {
        str(p.relative_to(ROOT / "fmnist"))
        for p in (ROOT / "fmnist").rglob("*.py")
        if not (p.name == "__init__.py" and p.parent != ROOT / "fmnist")
    }
    listed = listed_modules(layout_block())
    assert on_disk - listed == set(), "add these to docs/design.md's layout"
    assert listed - on_disk == set(), "docs/design.md's layout names modules that are gone"


def test_the_layout_reader_sees_a_missing_module():
    assert listed_modules("  cli/ x\n    main.py y\n  data.py z\n") == {
        "cli/main.py",
        "data.py",
    }


def test_design_test_table_lists_every_test_file():
    missing = [
        p.name
        for p in sorted((ROOT / "tests").glob("test_*.py"))
        if f"`tests/{p.name}`" not in DESIGN
    ]
    assert missing == []


def test_design_lists_every_doc():
    docs_line = next(line for line in layout_block().splitlines() if line.startswith("docs/"))
    missing = [
        p.stem
        for p in sorted((ROOT / "docs").glob("*.md"))
        if not re.search(rf"\b{p.stem}\b", docs_line)
    ]
    assert missing == [], "name these in docs/design.md's layout, on the docs/ line"


# --------------------------------------------------------------------------------------
# Markdown: tables, headings, links
# --------------------------------------------------------------------------------------


def without_code_blocks(text: str) -> str:
    """The text with fenced code blocks blanked (a `# comment` there is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of `text`: its rows (the header first), each a list of cells."""
    found, rows = [], []
    for line in without_code_blocks(text).splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            found, rows = found + [rows], []
    return found


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    plain = without_code_blocks(text)
    found = set(re.findall(r'<a id="([^"]+)"', plain))
    for heading in re.findall(r"^#{1,6} (.+)$", plain, flags=re.MULTILINE):
        base, n = slug(heading), 0
        while (candidate := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(candidate)
    return found


def broken_links(path: Path, text: str) -> list[str]:
    """Relative links of a Markdown file whose file or #anchor does not exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code_blocks(text)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(target)
            continue
        page = text if dest == path else dest.read_text() if dest.suffix == ".md" else ""
        if anchor and dest.suffix == ".md" and anchor not in anchors(page):
            broken.append(target)
    return broken


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference to docs/"


def test_relative_links_resolve():
    broken = {p.name: b for p in markdown_files() if (b := broken_links(p, p.read_text()))}
    assert broken == {}


def test_the_link_check_sees_a_missing_file_and_anchor():
    page = ROOT / "docs" / "cli.md"
    text = (
        "# Top\n## Exit codes\n```\n# not a heading\n```\n[a](#exit-codes) [b](#top) "
        "[c](design.md#tests) [d](nowhere.md) [e](#not-a-heading) [f](design.md#nope) "
        "[g](https://example.com/x)\n"
    )
    assert broken_links(page, text) == [
        "nowhere.md",
        "#not-a-heading",
        "design.md#nope",
    ]
    assert slug("Photos (`bench_photos.py`)") == "photos-bench_photospy"


# --------------------------------------------------------------------------------------
# docs/sweeps.md against the sweep-file parser
# --------------------------------------------------------------------------------------


class ReadKeys(dict):
    """A real table that records the keys a function reads from it by name."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def accepted_keys() -> set[str]:
    """What the code accepts, as 'table:NAME', 'variant:KEY', 'TABLE:KEY' (a table's own
    keys, beside the variant keys) and 'distribution:NAME'."""
    from fmnist.training import spaces, variants

    keys = {f"table:{t}" for t in variants._TOP_KEYS}
    keys |= {f"variant:{k}" for k in variants.KEYS}
    keys |= {f"distribution:{d}" for d in spaces.DISTRIBUTIONS}
    grid = ReadKeys({"name": "g", "dropout": [0.1]})
    spaces.grid(grid)
    random = ReadKeys({"name": "r", "samples": 1, "dropout": {"uniform": [0.1, 0.2]}})
    spaces.sample(random)
    keys |= {f"grid:{k}" for k in grid.read} | {f"random:{k}" for k in random.read}
    try:
        variants.ensemble_size("[ensemble]\nno_such_key = 1\n")
        raise AssertionError("[ensemble] took an unknown key")
    except variants.SweepError as e:
        known = re.search(r"\(known: ([^)]*)\)", str(e))
        assert known, f"the [ensemble] error no longer lists the known keys: {e}"
        keys |= {f"ensemble:{k.strip()}" for k in known.group(1).split(",")}
    from fmnist.training import asha, study

    keys |= {f"search:{k}" for k in asha.KEYS} | {f"study:{k}" for k in study.OWN_KEYS}
    keys |= {f"distill:{k}" for k in variants.DISTILL_TABLE_KEYS}
    keys |= {"table:distill.teacher"}
    keys |= {f"distill.teacher:{k}" for k in variants.TEACHER_TABLE_KEYS}
    return keys


def documented_keys(text: str) -> set[str]:
    """The same from docs/sweeps.md's tables: 'key' (variant keys), 'table' (the tables
    and their own keys) and 'distribution'."""
    keys = set()
    for rows in tables(text):
        kind = rows[0][0].lower()
        for row in rows[1:]:
            names = ticked(row[0])
            if kind == "key":
                keys |= {f"variant:{n}" for n in names}
            elif kind == "distribution":
                keys |= {f"distribution:{n.split()[0].strip('{')}" for n in names}
            elif kind == "table":
                for name in names:
                    table = name.strip("[]")
                    keys.add(f"table:{table}")
                    keys |= {f"{table}:{k}" for k in ticked(row[1])}
    return keys


def sweep_doc_drift(text: str) -> tuple[set[str], set[str]]:
    """(accepted but not documented, documented but not accepted)."""
    code, doc = accepted_keys(), documented_keys(text)
    return code - doc, doc - code


SWEEPS = (ROOT / "docs" / "sweeps.md").read_text()


def test_sweeps_doc_documents_exactly_the_accepted_keys():
    undocumented, unknown = sweep_doc_drift(SWEEPS)
    assert undocumented == set(), "document these in docs/sweeps.md"
    assert unknown == set(), "docs/sweeps.md documents keys the parser refuses"


def test_the_sweeps_check_sees_a_missing_and_an_invented_key():
    assert {
        "variant:dropout",
        "random:sample_seed",
        "ensemble:size",
        "distribution:loguniform",
        "table:grid",
    } <= accepted_keys()
    lines = SWEEPS.splitlines()
    without = "\n".join(line for line in lines if not line.startswith("| `dropout`"))
    assert sweep_doc_drift(without) == ({"variant:dropout"}, set())
    row = next(i for i, line in enumerate(lines) if line.startswith("| `seed`"))
    invented = "\n".join(lines[: row + 1] + ["| `momentum` | 0–1 | 0.9 | |"] + lines[row + 1 :])
    assert sweep_doc_drift(invented) == (set(), {"variant:momentum"})
    no_seed = SWEEPS.replace("`sample_seed`", "`random_seed`", 1)  # [[random]]'s row
    assert sweep_doc_drift(no_seed) == ({"random:sample_seed"}, {"random:random_seed"})


# --------------------------------------------------------------------------------------
# docs/cli.md and the README's command table against the Typer app
# --------------------------------------------------------------------------------------


def commands() -> dict[str, set[str]]:
    """{'models prune': {'--keep', '--export-dir'}, ...}: every command and its options."""
    import typer.main

    from fmnist.cli.main import app

    def walk(command, path):
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield (
                " ".join(path),
                {o for p in command.params if p.param_type_name == "option" for o in p.opts},
            )

    return dict(walk(typer.main.get_command(app), []))


def documented_options(text: str) -> dict[str, set[str]]:
    """{'models prune': {...}} from docs/cli.md: under each '### `fmnist-job COMMAND`'
    heading, the first column of its option table."""
    found = {}
    sections = re.split(r"^### `fmnist-job ([a-z ]+)[^`]*`.*$", text, flags=re.MULTILINE)
    for command, body in zip(sections[1::2], sections[2::2]):
        body = body.split("\n## ", 1)[0]
        found[command.strip()] = {
            o.split()[0]
            for rows in tables(body)
            if rows[0][0].lower() == "option"
            for row in rows[1:]
            for o in ticked(row[0])
            if o.startswith("--")
        }
    return found


CLI_DOC = (ROOT / "docs" / "cli.md").read_text()


def test_cli_doc_lists_every_option_of_every_command():
    assert documented_options(CLI_DOC) == commands()


def test_the_option_check_sees_a_missing_option():
    without = "\n".join(
        line for line in CLI_DOC.splitlines() if not line.startswith("| `--preview-count ")
    )
    documented = documented_options(without)
    assert "--preview-count" in commands()["score"]
    assert commands()["score"] - documented["score"] == {"--preview-count"}


def test_readme_command_table_names_every_command():
    readme = (ROOT / "README.md").read_text()
    rows = next(rows for rows in tables(readme) if rows[0][0].lower() == "command")
    listed = {
        " ".join(re.match(r"fmnist-job((?: [a-z]+)+)", n).group(1).split())
        for row in rows[1:]
        for n in ticked(row[0])
    }
    assert listed == set(commands())
