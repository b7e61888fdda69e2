"""Shared test helpers. Tests use the real bundled dataset (small slices), real
TensorFlow and a real local Ray; nothing here mocks them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FMNIST_JOB = [sys.executable, "-m", "fmnist.cli"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run `fmnist-job ARGS` as a user would, in a fresh process."""
    return subprocess.run([*FMNIST_JOB, *map(str, args)], cwd=cwd or ROOT, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def sweep_file(tmp_path):
    """Write a sweep file from TOML text; returns its path."""
    def write(text: str, name: str = "sweep.toml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write
