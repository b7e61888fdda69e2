"""Ray token authentication (Ray 2.52+): `fmnist-job --address` against a real two-node
cluster started with `ray start` and RAY_AUTH_MODE=token.

With a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) train and
score --ray work over both address forms, host:port (the GCS) and ray:// (the Ray client
server), without RAY_AUTH_MODE set by the user (train; score --ray's successful runs on
such a cluster are not covered here). Without one, or with a wrong one, the
command ends within 10 s with exit code 2 and a one-line message that names
authentication and how to give the token (Ray alone waits 20-30 s and then reports a
timeout). Each variant's Ray node id is in results.json.

Isolation: the cluster and every command get their own HOME and RAY_TMPDIR under the
test's temporary directory, so no token reaches the machine's ~/.ray and no `ray start`
record reaches its /tmp/ray. The cluster's processes are found by that RAY_TMPDIR in
their environment and ended by pid (never `ray stop`, which would end every Ray on the
machine).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FMNIST_JOB, ROOT
from raycluster import RayStartCluster, clean_env

AUTH_ERROR_SECONDS = 10  # the requirement: the error comes within 10 s
TWO_VARIANTS = """
[defaults]
hidden = [32]
epochs = 1
batch_size = 64
[[variant]]
name = "a"
[[variant]]
name = "b"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = RayStartCluster(tmp_path_factory.mktemp("token-cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def run(args, env, timeout=600) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [*FMNIST_JOB, *map(str, args)],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - started


def client_env(tmp: Path, **extra: str) -> dict:
    """A user's shell: no RAY_AUTH_MODE, a HOME of its own (no ~/.ray/auth_token unless
    the test writes one)."""
    return clean_env(tmp / "home", tmp / "ray", **extra)


@pytest.fixture(scope="module")
def trained(cluster, tmp_path_factory):
    """`fmnist-job train --address HOST:PORT` with the token in RAY_AUTH_TOKEN_PATH:
    two 1-CPU variants on two 1-CPU nodes."""
    tmp = tmp_path_factory.mktemp("trained")
    (tmp / "token").write_text(cluster.token + "\n")
    sweep = tmp / "two.toml"
    sweep.write_text(TWO_VARIANTS)
    proc, _ = run(
        [
            "train",
            "--address",
            cluster.gcs,
            "--sweep",
            sweep,
            "--workers",
            "2",
            "--cpus-per-worker",
            "1",
            "--limit",
            "1000",
            "--runs-dir",
            tmp / "run",
            "--export-dir",
            tmp / "models",
        ],
        client_env(tmp, RAY_AUTH_TOKEN_PATH=str(tmp / "token")),
    )
    return tmp, proc


@pytest.mark.slow
def test_train_with_the_token_from_a_file_over_host_port(trained, cluster):
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp / "run" / "results.json").read_text())
    variants = results["variants"]
    assert [v["status"] for v in variants] == ["ok", "ok"]
    # Each variant's node id, beside its host: one task per node (1 CPU each), so the two
    # variants ran on the two nodes (which share this machine's host name).
    assert all(list(v).index("node_id") == list(v).index("host") + 1 for v in variants)
    assert {v["node_id"] for v in variants} == cluster.node_ids()
    assert len({v["host"] for v in variants}) == 1
    assert (tmp / "models" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["RAY_AUTH_TOKEN", "~/.ray/auth_token"])
def test_train_over_ray_client_with_the_token(cluster, tmp_path, sweep_file, source):
    env = client_env(tmp_path)
    if source == "RAY_AUTH_TOKEN":
        env["RAY_AUTH_TOKEN"] = cluster.token
    else:
        (tmp_path / "home" / ".ray").mkdir(parents=True)
        (tmp_path / "home" / ".ray" / "auth_token").write_text(cluster.token)
    sweep = sweep_file('[[variant]]\nname = "tiny"\nhidden = [16]\nepochs = 1\n')
    proc, _ = run(
        [
            "train",
            "--address",
            cluster.client,
            "--sweep",
            sweep,
            "--limit",
            "1000",
            "--runs-dir",
            tmp_path / "run",
            "--export-dir",
            tmp_path / "models",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (variant,) = json.loads((tmp_path / "run" / "results.json").read_text())["variants"]
    assert variant["status"] == "ok" and variant["node_id"] in cluster.node_ids()


def assert_auth_error(proc, seconds, address, expected):
    print(f"\nauth error for {address}: {seconds:.2f} s")  # the measured time (pytest -s)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("fmnist-job: error: ") and expected in lines[0], lines[0]
    assert address in lines[0] and "RAY_AUTH_TOKEN" in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["host:port", "ray://"])
def test_train_without_a_token_fails_fast_naming_authentication(cluster, tmp_path, form):
    address = cluster.gcs if form == "host:port" else cluster.client
    # The timeout is the requirement: Ray alone would wait 20 s (host:port) or 30 s (ray://).
    proc, seconds = run(
        [
            "train",
            "--address",
            address,
            "--limit",
            "1000",
            "--runs-dir",
            tmp_path / "run",
            "--export-dir",
            tmp_path / "models",
        ],
        client_env(tmp_path),
        timeout=AUTH_ERROR_SECONDS,
    )
    assert_auth_error(
        proc, seconds, address, "requires token authentication and no token was found"
    )
    assert not (tmp_path / "models").exists()  # no version; the directory it made removed


@pytest.mark.slow
@pytest.mark.parametrize("form", ["host:port", "ray://"])
def test_a_wrong_token_is_rejected_fast(cluster, tmp_path, form):
    address = cluster.gcs if form == "host:port" else cluster.client
    proc, seconds = run(
        [
            "train",
            "--address",
            address,
            "--limit",
            "1000",
            "--runs-dir",
            tmp_path / "run",
            "--export-dir",
            tmp_path / "models",
        ],
        client_env(
            tmp_path,
            RAY_ADDRESS=address,
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
        ),
        timeout=AUTH_ERROR_SECONDS,
    )
    assert_auth_error(
        proc, seconds, address, "rejected the authentication token from RAY_AUTH_TOKEN"
    )


def images(directory: Path, n: int = 5) -> Path:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(directory / f"{i}.png")
    return directory


@pytest.mark.slow
def test_score_ray_without_a_token_fails_fast_naming_authentication(trained, cluster, tmp_path):
    """score --ray connects through the same fmnist.cluster.connect, after loading the model
    (through ray:// it runs as a Ray job: tests/test_score_job.py)."""
    tmp, proc = trained
    assert proc.returncode == 0, proc.stderr[-3000:]
    address = cluster.gcs
    proc, seconds = run(
        [
            "score",
            images(tmp_path / "inbox"),
            "--ray",
            "--address",
            address,
            "--model",
            tmp / "models",
            "--out",
            tmp_path / "p.csv",
        ],
        client_env(tmp_path),
        timeout=AUTH_ERROR_SECONDS,
    )
    assert_auth_error(
        proc, seconds, address, "requires token authentication and no token was found"
    )
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_a_cluster_without_authentication_ignores_the_token(ray_cluster, tmp_path, sweep_file):
    """A token lying around (~/.ray/auth_token) must not get in the way of a cluster that
    asks for none: fmnist-job leaves token mode off when the cluster does not want it.
    The cluster is the session's shared one (tests/conftest.py), started without
    authentication."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    assert ray_cluster.env["RAY_AUTH_MODE"] == "disabled"
    sweep = sweep_file('[[variant]]\nname = "tiny"\nhidden = [16]\nepochs = 1\n')
    # host:port only: a ray:// client to a `ray start` cluster failed now and then with
    # "Initialization failure from server", with and without authentication (cause not
    # found); ray:// with a token is covered above.
    for i, address in enumerate((ray_cluster.gcs,)):
        proc, _ = run(
            [
                "train",
                "--address",
                address,
                "--sweep",
                sweep,
                "--limit",
                "1000",
                "--runs-dir",
                tmp_path / f"run{i}",
                "--export-dir",
                tmp_path / "models",
            ],
            client_env(tmp_path),
        )
        assert proc.returncode == 0, f"{address}: {proc.stderr[-3000:]}"
        (variant,) = json.loads((tmp_path / f"run{i}" / "results.json").read_text())["variants"]
        assert variant["status"] == "ok" and re.fullmatch(r"[0-9a-f]{56}", variant["node_id"])
