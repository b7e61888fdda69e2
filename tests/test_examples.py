"""The command examples in README.md and docs/cli.md are run, and their output compared.

A ```console block holds `$ fmnist-job ...` lines, each followed by the output it gives
(stdout and stderr together, as a terminal shows them) and, when not 0, `[exit N]`. In
the expected output a line `...` stands for any number of lines and `...` inside a line
for any text; blank lines and trailing spaces are not compared. The commands run in a
directory holding `photos/` (three test-set items as PNGs) and `models/fmnist` (a real
export), so a changed message or option fails here, not for a user.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from conftest import FMNIST_JOB, ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "cli.md"]
BLOCK = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


def examples(path: Path) -> list[tuple[str, list[str], int]]:
    """(command, expected output lines, exit code) of each `$` line in `path`'s console
    blocks."""
    found = []
    for block in BLOCK.findall(path.read_text()):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, *lines = chunk.rstrip("\n").split("\n")
            code = 0
            if lines and re.fullmatch(r"\[exit (\d+)\]", lines[-1].strip()):
                code = int(lines.pop()[6:-1])
            found.append((command, lines, code))
    return found


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` fits `expected`, with `...` as described in the module."""
    expected = [e.rstrip() for e in expected if e.strip()]
    actual = [a.rstrip() for a in actual if a.strip()]

    def line(e: str, a: str) -> bool:
        return re.fullmatch(".*".join(map(re.escape, e.split("..."))), a) is not None

    def fit(i: int, j: int) -> bool:
        if i == len(expected):
            return j == len(actual)
        if expected[i] == "...":
            return any(fit(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and line(expected[i], actual[j]) and fit(i + 1, j + 1)

    return fit(0, 0)


def test_the_matcher_can_fail():
    assert matches(["a", "...", "c ... d"], ["a", "x", "y", "c 1 2 d"])
    assert not matches(["a", "c"], ["a", "b", "c"])
    assert not matches(["score: ... files"], ["score: 3 images"])
    assert not matches(["a", "..."], [])


ALL = [(path.name, *example) for path in DOCS for example in examples(path)]


def test_the_docs_have_examples():
    assert {name for name, *_ in ALL} == {"README.md", "cli.md"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, scoring_model, test_set):
    d = tmp_path_factory.mktemp("examples")
    (d / "photos").mkdir()
    x, _ = test_set
    for i in range(3):
        Image.fromarray(x[i]).save(d / "photos" / f"item-{i}.png")
    shutil.copytree(scoring_model, d / "models" / "fmnist")
    return d


@pytest.mark.slow
@pytest.mark.parametrize(
    "doc, command, expected, code", ALL, ids=[f"{doc}: {command}" for doc, command, *_ in ALL]
)
def test_example_gives_the_output_shown(workdir, doc, command, expected, code):
    argv = shlex.split(command)
    assert argv[0] == "fmnist-job", command
    proc = subprocess.run(
        [*FMNIST_JOB, *argv[1:]],
        cwd=workdir,
        text=True,
        timeout=300,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.returncode == code, proc.stdout[-3000:]
    assert matches(expected, proc.stdout.splitlines()), (
        f"{doc}: $ {command}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + proc.stdout
    )
