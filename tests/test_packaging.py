"""Packaging: the default sweep travels with the code; the lock files agree with
pyproject.toml and with each other; the Dockerfile's read-only-root statement matches the
manifests. (The image itself is built and run by tests/container/run, which CI runs after
this suite.)"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
import yaml

from conftest import ROOT, run_cli

REQ = ROOT / "requirements"


def test_checkout_jobs_is_the_packaged_folder():
    assert (ROOT / "jobs").resolve() == (ROOT / "fmnist" / "jobs").resolve()
    assert (ROOT / "jobs" / "default.toml").is_file()


@pytest.mark.slow
def test_default_sweep_is_found_from_any_working_directory(tmp_path):
    # --limit/--val-size are checked right after the sweep is read: exit 2 with that
    # message (and nothing started) proves the sweep was found without --sweep.
    proc = run_cli("train", "--limit", "200", "--val-size", "300", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "sweep file not found" not in proc.stderr
    assert "--val-size 300 must be smaller than --limit 200" in proc.stderr, proc.stderr


def test_train_help_names_the_packaged_default():
    proc = run_cli("train", "--help", env={"COLUMNS": "200"})
    assert "fmnist/jobs/default.toml" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_installed_wheel_carries_the_sweeps_and_uses_its_own_default(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "fmnist", src / "fmnist", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    dist = tmp_path / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))",
            str(dist),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = dist / build.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    for sweep in ("default", "best", "best-seeds", "ensemble"):
        assert f"fmnist/jobs/{sweep}.toml" in names, names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure wheel: installing is unpacking
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import fmnist, sys\nfrom fmnist.training import variants\n"
        "assert fmnist.__file__.startswith(sys.argv[1]), fmnist.__file__\n"
        "assert str(variants.DEFAULT_SWEEP).startswith(sys.argv[1]), variants.DEFAULT_SWEEP\n"
        "print(len(variants.load(variants.DEFAULT_SWEEP)))\n"
        "from fmnist.cli import main\n"
        "sys.argv = ['fmnist-job', 'train', '--limit', '200', '--val-size', '300']\nsys.exit(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=elsewhere,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert proc.stdout.strip() == "4", proc.stdout + proc.stderr
    assert proc.returncode == 2 and "must be smaller than --limit 200" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------------
# Lock files
# --------------------------------------------------------------------------------------


def lock(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{package: (version, hashes)} of a requirements/*.lock file."""
    out, current = {}, None
    for line in (REQ / name).read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line):
            current = m.group(1).lower()
            out[current] = (m.group(2), set())
        for h in re.findall(r"--hash=(sha256:[0-9a-f]{64})", line):
            out[current][1].add(h)
    return {k: (v, frozenset(h)) for k, (v, h) in out.items()}


def pins() -> dict[str, str]:
    """pyproject.toml's == pins (dependencies and extras), by lower-case name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [
        r for rs in project["optional-dependencies"].values() for r in rs
    ]
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", r.strip())
        assert m, f"pyproject.toml: {r!r} is not pinned with =="
        out[m.group(1).lower()] = m.group(3)
    return out


def test_every_locked_package_has_a_version_and_hashes():
    for name in ("cpu.lock", "gpu.lock", "dev.lock", "tools.lock", "mlflow-server.lock"):
        entries = lock(name)
        assert entries, name
        for pkg, (version, hashes) in entries.items():
            assert version and hashes, f"{name}: {pkg} without a version or hashes"


def test_locks_install_pyproject_pins():
    cpu, gpu, dev = lock("cpu.lock"), lock("gpu.lock"), lock("dev.lock")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    # The test and mlflow extras are in dev.lock only: the images install neither.
    dev_only = {
        re.match(r"[A-Za-z0-9_.\-]+", r)[0].lower() for r in extras["test"] + extras["mlflow"]
    }
    for pkg, version in pins().items():
        if pkg == "tensorflow":  # the CPU locks use its CPU-only build, same version
            assert cpu["tensorflow-cpu"][0] == version and "tensorflow" not in cpu
            assert gpu["tensorflow"][0] == version and "tensorflow-cpu" not in gpu
            continue
        if pkg in dev_only:
            assert dev[pkg][0] == version, f"dev.lock: {pkg} {dev[pkg][0]} != pyproject {version}"
            continue
        for name, entries in (("cpu.lock", cpu), ("gpu.lock", gpu)):
            assert entries.get(pkg, (None,))[0] == version, (
                f"{name}: {pkg} {entries.get(pkg)} != pyproject {version}: run requirements/compile"
            )


def test_dev_lock_is_the_image_lock_plus_test_tools():
    """./dev and CI test exactly what the CPU image runs: same versions, same hashes."""
    cpu, dev, tools = lock("cpu.lock"), lock("dev.lock"), lock("tools.lock")
    for pkg, entry in cpu.items():
        assert dev.get(pkg) == entry, (
            f"dev.lock: {pkg} {dev.get(pkg, ('missing',))[0]} != cpu.lock {entry[0]}"
        )
    assert dev["uv"] == tools["uv"]
    gpu = lock("gpu.lock")
    shared = set(cpu) & set(gpu)
    assert {p for p in shared if cpu[p][0] != gpu[p][0]} == set()


def test_dev_ci_and_dockerfile_install_from_the_locks_with_hashes():
    dev = (ROOT / "dev").read_text()
    assert "--require-hashes --compile-bytecode \\\n    requirements/dev.lock" in dev
    assert "-r requirements/tools.lock" in dev
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert (
        '--require-hashes --compile-bytecode \\\n      "requirements/${FLAVOUR}.lock"' in dockerfile
    )
    assert "--require-hashes -r requirements/tools.lock" in dockerfile
    # Dependencies before code: the first COPY of the project comes after the lock install.
    assert dockerfile.index("uv pip sync") < dockerfile.index("COPY fmnist/")


# --------------------------------------------------------------------------------------
# Read-only root: what the Dockerfile says must be writable = the manifests' emptyDirs
# --------------------------------------------------------------------------------------


def test_read_only_root_statement_matches_the_manifests():
    text = (ROOT / "Dockerfile").read_text()
    m = re.search(
        r"# Read-only root filesystem: writable mounts are needed at (.+?), nothing", text, re.S
    )
    assert m, "Dockerfile: the read-only-root statement is missing"
    stated = set(re.findall(r"(/[\w/.-]+)", m.group(1)))
    assert re.search(r"^\s+HOME=(\S+)", text, re.M).group(1) in stated, "HOME must be writable"
    assert re.search(r"^\s+TMPDIR=(\S+)", text, re.M).group(1) in stated
    mounted = set()
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for pod in pod_specs(doc):
                volumes = {v["name"]: v for v in pod.get("volumes", [])}
                for c in pod.get("containers", []):
                    if "fmnist-job" not in c.get("image", ""):
                        continue
                    if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                        continue
                    paths = {
                        vm["mountPath"]
                        for vm in c.get("volumeMounts", [])
                        if "emptyDir" in volumes.get(vm["name"], {})
                    } - {"/dev/shm"}
                    assert stated <= paths, (
                        f"{path.name}: {c['name']} lacks emptyDirs at {stated - paths}"
                    )
                    mounted |= paths
    assert mounted == stated, (
        f"manifests mount emptyDirs at {mounted}, the Dockerfile states {stated}"
    )


def pod_specs(node):
    if isinstance(node, dict):
        if "containers" in node and isinstance(node["containers"], list):
            yield node
        for v in node.values():
            yield from pod_specs(v)
    elif isinstance(node, list):
        for v in node:
            yield from pod_specs(v)


def test_the_mlflow_server_lock_matches_the_client_extra():
    # The server runs in its own venv (requirements/mlflow-server.in says why); the client
    # and the server the tests run it against are one MLflow release.
    server = lock("mlflow-server.lock")
    assert server["mlflow"][0] == pins()["mlflow-skinny"] == lock("dev.lock")["mlflow-skinny"][0]
    assert "mlflow-skinny" not in lock("cpu.lock") and "mlflow-skinny" not in lock("gpu.lock")
