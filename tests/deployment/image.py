"""The image side: the Dockerfile (parsed with dockerfile-parse), .dockerignore (Docker's
matching rules) and the versions in pyproject.toml that image tags must carry."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass

from dockerfile_parse import DockerfileParser

from deployment import DOCKERFILE, DOCKERIGNORE, PYPROJECT


@dataclass(frozen=True)
class Instr:
    """One Dockerfile instruction: its first line (1-based), keyword and arguments, with
    continuation lines joined."""

    line: int
    keyword: str
    args: str


def _parser() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE), cache_content=True)


def dockerfile_instructions() -> list[Instr]:
    return [
        Instr(s["startline"] + 1, s["instruction"], s["value"])
        for s in _parser().structure
        if s["instruction"] != "COMMENT"
    ]


def stages() -> list[list[Instr]]:
    """The instructions of each build stage, its FROM first."""
    out: list[list[Instr]] = []
    for i in dockerfile_instructions():
        if i.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(i)
    return out


def final_stage() -> list[Instr]:
    return stages()[-1]


def final_base_image() -> str:
    """The image the final stage starts from, following FROM <stage> back to an image."""
    froms = [i.args.split() for i in dockerfile_instructions() if i.keyword == "FROM"]
    parents = _parser().parent_images  # ARGs substituted, one per FROM
    names = [f[-1] if len(f) == 3 and f[1].lower() == "as" else None for f in froms]
    base = parents[-1]
    while base in names:
        base = parents[names.index(base)]
    return base


def dockerfile_entrypoint() -> list[str]:
    entry = [i for i in final_stage() if i.keyword == "ENTRYPOINT"]
    assert entry, "Dockerfile: no ENTRYPOINT in the final stage"
    return json.loads(entry[-1].args)


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """(is an exception `!`, regex) for each .dockerignore line, in order."""
    out = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        out.append((include, re.compile(_glob_regex(line.lstrip("!").strip().strip("/")))))
    return out


def _glob_regex(pat: str) -> str:
    rx, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        elif pat[i] == "[":  # a character class; Go's [^...] and [!...] negate
            j = pat.index("]", i)
            body = pat[i + 1 : j].replace("!", "^", 1 if pat[i + 1] == "!" else 0)
            rx, i = rx + "[" + body + "]", j + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    return rx + r"\Z"


def in_build_context(rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    included = True
    for include, rx in dockerignore_patterns():
        if any(rx.match(c) for c in candidates):
            included = include
    return included


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def ray_pin() -> str:
    pins = [
        m.group(2)
        for dep in pyproject()["project"]["dependencies"]
        if (m := re.fullmatch(r"ray(\[[^\]]*\])?\s*==\s*([0-9][\w.]*)", dep.strip()))
    ]
    assert len(pins) == 1, "pyproject.toml must pin ray exactly once (ray[...]==X.Y.Z)"
    return pins[0]


def project_version() -> str:
    return pyproject()["project"]["version"]


IMAGE_TAG = re.compile(r"^(?P<version>[^-]+)-ray(?P<ray>[0-9][0-9.]*)(?P<gpu>-gpu)?$")


def split_image(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image reference, which must have a tag."""
    assert "@" not in ref or ":" in ref.split("@")[0], (
        f"{ref}: tag it (and optionally pin a digest)"
    )
    name = ref.split("@")[0]
    repo, _, tag = name.rpartition(":")
    assert repo and "/" not in tag, f"image {ref!r} has no tag"
    return repo, tag
