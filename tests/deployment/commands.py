"""Every `fmnist-job` command line in the manifests (container command/args, shell
scripts, RayJob entrypoints, the command `guard` runs), parsed by the real Typer/Click
app without running it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import typer

import fmnist.cli

from deployment import IMAGE_WORKDIR
from deployment.image import dockerfile_entrypoint
from deployment.manifests import Doc, PodT, containers, pod_templates, rayjob_specs

CLI = typer.main.get_command(fmnist.cli.app)
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/sh"}
SHELL_OPERATORS = {";", "&&", "||", "|", "&"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Invocation:
    where: str
    argv: tuple[str, ...]  # after "fmnist-job"
    cwd: PurePosixPath | None  # None: not known (e.g. Ray job driver without `cd`)


def shell_commands(
    script: str,
    cwd: PurePosixPath | None,
) -> Iterator[tuple[list[str], PurePosixPath | None]]:
    """Simple commands of a shell script, with the directory each runs in (follows `cd`)."""
    lex = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    words: list[str] = []
    for token in [*lex, ";"]:
        if token not in SHELL_OPERATORS:
            words.append(token)
            continue
        while words and (words[0] == "exec" or ASSIGNMENT.match(words[0])):
            words = words[1:]
        if words and words[0] == "cd":
            assert len(words) == 2 and words[1].startswith("/"), (
                f"cd needs one absolute dir: {words}"
            )
            cwd = PurePosixPath(words[1])
        elif words:
            yield words, cwd
        words = []


def command_invocations(argv: list[str], cwd: PurePosixPath | None, where: str) -> list[Invocation]:
    if not argv:
        return []
    if argv[0] in SHELLS:
        assert argv[1:2] == ["-c"] and len(argv) >= 3, f"{where}: expected `{argv[0]} -c SCRIPT`"
        found = []
        for words, here in shell_commands(argv[2], cwd):
            found += command_invocations(words, here, where)
        return found
    if PurePosixPath(argv[0]).name == "fmnist-job":
        found = [Invocation(where, tuple(argv[1:]), cwd)]
        if argv[1:2] == ["guard"] and "--" in argv:  # and the command it runs
            found += command_invocations(argv[argv.index("--") + 1 :], cwd, where)
        return found
    return []


def invocations(doc: Doc) -> list[tuple[Invocation, PodT | None, dict | None]]:
    """Every fmnist-job command line of a manifest, with the pod and container running it
    (None for a RayJob entrypoint, which the Ray job driver runs on the head)."""
    found = []
    for pod in pod_templates(doc):
        if pod.role in ("ray-head", "ray-worker"):
            continue  # KubeRay generates `ray start` for these
        for _, c in containers(pod):
            if "command" not in c and "args" not in c:
                continue
            argv = list(c.get("command") or dockerfile_entrypoint()) + list(c.get("args", []))
            cwd = PurePosixPath(c.get("workingDir", str(IMAGE_WORKDIR)))
            for inv in command_invocations(argv, cwd, f"{pod.where}.{c['name']}"):
                found.append((inv, pod, c))
    for where, js in rayjob_specs(doc):
        if "entrypoint" in js:
            argv = shlex.split(js["entrypoint"])
            for inv in command_invocations(argv, None, f"{where}.entrypoint"):
                found.append((inv, None, None))
    return found


def _rest(ctx) -> list[str]:
    return [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]


def parse_cli(argv: tuple[str, ...]) -> tuple[str, dict]:
    """Parse like `fmnist-job ARGV` would, without invoking: (subcommand, its params)."""
    ctx = CLI.make_context("fmnist-job", list(argv))
    name, sub, rest = CLI.resolve_command(ctx, _rest(ctx))
    assert sub is not None, f"no subcommand in {argv}"
    sub_ctx = sub.make_context(name, rest, parent=ctx)
    if hasattr(sub, "resolve_command"):  # a group (models, runs): its own subcommand
        leaf, cmd, inner = sub.resolve_command(sub_ctx, _rest(sub_ctx))
        return f"{name} {leaf}", cmd.make_context(leaf, inner, parent=sub_ctx).params
    return name, sub_ctx.params
