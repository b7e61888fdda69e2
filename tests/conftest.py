"""Shared test helpers. Tests use the real bundled dataset (small slices), real
TensorFlow and a real local Ray; nothing here mocks them."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FMNIST_JOB = [sys.executable, "-m", "fmnist.cli"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run `fmnist-job ARGS` as a user would, in a fresh process."""
    return subprocess.run(
        [*FMNIST_JOB, *map(str, args)],
        cwd=cwd or ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start(*args, cwd=None) -> subprocess.Popen:
    """`fmnist-job ARGS` started as a user would, its output piped (for tests that act on
    it while it runs)."""
    return subprocess.Popen(
        [*FMNIST_JOB, *map(str, args)],
        cwd=cwd or ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def clip(err: str) -> str:
    """stderr for an assertion message: its start names the cause (a Ray fatal error's
    "Check failed" line), its end the last thing that happened."""
    return err if len(err) <= 3000 else f"{err[:1500]}\n[...]\n{err[-1500:]}"


def wait_for(predicate, proc=None, timeout=240, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process ended ({proc.returncode}) before {what}: {clip(proc.stderr.read())}"
            )
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cli(argv: list, monkeypatch, capsys) -> tuple[int, str, str]:
    """The real entry point (fmnist.cli.main) in this process: exit code, stdout, stderr."""
    from fmnist import cli as cli_mod

    monkeypatch.setattr(sys, "argv", ["fmnist-job", *map(str, argv)])
    code = cli_mod.main()
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path: Path) -> list[dict]:
    """Rows of a CSV or JSONL output, as dicts of strings/None for easy comparison."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return [
                {k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)
            ]
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        # Booleans as the CSV writes them (the `uncertain` column): true / false.
        rows.append(
            {
                k: (None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in json.loads(line).items()
            }
        )
    return rows


PROBABILITIES = ("confidence", "top1_prob", "top2_prob", "top3_prob")


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    """Rows of two scoring runs that may call the model in different batches or threads
    (local and --ray, Ray Data's blocks): every column equal but the probabilities,
    which agree to float32 rounding (their last printed digit may differ)."""
    assert [{k: v for k, v in r.items() if k not in PROBABILITIES} for r in got] == [
        {k: v for k, v in r.items() if k not in PROBABILITIES} for r in expected
    ]
    for a, b in zip(got, expected):
        for k in PROBABILITIES:
            if a[k] is not None:
                assert abs(float(a[k]) - float(b[k])) <= 1e-5, (k, a, b)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory, s3_server):
    """One Ray (`ray start --head`, 2 CPUs, on 127.0.0.1, no authentication) shared by the
    tests that need a Ray but are not about starting one: pass `ray_cluster.gcs` as the
    address. Its processes hold the session S3 server's credentials, as a pod's would, so
    tasks reach the tests' buckets. They are ended by pid at the end of the session."""
    from raycluster import RayStartCluster

    cluster = RayStartCluster(tmp_path_factory.mktemp("ray-cluster"), auth=False, num_cpus=2)
    cluster.env.update(s3_server.env)
    try:
        cluster.start(second_node=False)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on loopback for the session (tests/s3server.py)."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch):
    """A new empty bucket on the test S3 server, as 's3://NAME'; this process's
    environment points at the server (what run_cli passes on, too)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    return f"s3://{s3_server.new_bucket()}"


@pytest.fixture
def clean_cli_env(monkeypatch):
    """Options with envvar= would pick these up from the test's own environment."""
    for var in ("RAY_ADDRESS", "FMNIST_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def sweep_file(tmp_path):
    """Write a sweep file from TOML text; returns its path."""

    def write(text: str, name: str = "sweep.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return write


# -----------------------------------------------------------------------------
# Scoring: a small exported model and the test arrays (test_score.py, test_photos.py)


@pytest.fixture(scope="session")
def scoring_model(tmp_path_factory) -> Path:
    """An export base with one version: the tutorial net, 2 epochs on 7,000 images."""
    from fmnist.core import data
    from fmnist.training import fit, savedmodel, variants

    variant = variants.Variant(name="t", hidden=(128,), epochs=2, batch_size=64)
    splits = data.load(limit=8000, val_size=1000)
    result, weights, _ = fit.fit_variant(variant, splits)
    base = tmp_path_factory.mktemp("models") / "fmnist"
    savedmodel.export(
        variant,
        weights,
        {
            "class_names": list(data.CLASS_NAMES),
            "variant": variant.to_dict(),
            "val_accuracy": result.val_accuracy,
            "test_accuracy": result.test_accuracy,
            "run_id": "test",
        },
        base,
    )
    return base


@pytest.fixture(scope="session")
def serve(scoring_model):
    """The model's signature, called directly on uint8 arrays."""
    import tensorflow as tf

    from fmnist.core import export

    signature = tf.saved_model.load(str(scoring_model / "1")).signatures[export.SIGNATURE]
    return lambda x: signature(images=tf.constant(x))[export.OUTPUT_KEY].numpy()


@pytest.fixture(scope="session")
def test_set():
    from fmnist.core import data

    _, _, x_test, y_test, _ = data.load_arrays()
    return x_test, y_test
