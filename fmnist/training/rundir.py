"""The run directory: results.json, per-variant checkpoints, final weights and plots.

Everything a resumed or inspected sweep needs is here, so it must live on storage every
Ray node sees: a ReadWriteMany PVC on Kubernetes, or a bucket (s3://). In a bucket the
driver writes its files as objects and each task keeps its checkpoints there through a
local copy (fmnist/training/checkpoints.py).

    runs/<run id>/results.json              the record (fmnist/ops/results.py)
                  checkpoints/<variant>/    a lost task's retry resumes from these
                  tensorboard/<variant>/    per-epoch scalars
                  weights/<variant>.npz     a finished variant's weights
                  weights/<variant>.val.npy its validation probabilities (ensembles)
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
from pathlib import Path

from fmnist.core import storage
from fmnist.ops import results as results_mod
from fmnist.ops.results import RunResults


def new_run_dir() -> Path:
    """runs/<timestamp>-<random id>: unique, and sorted by start time."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{secrets.token_hex(3)}"


class ResumeError(Exception):
    """--resume names something that is not a resumable run directory."""


def read_resume(run_dir: Path) -> RunResults:
    """The record of an interrupted run, to finish it (raises ResumeError, one line)."""
    path = storage.as_location(run_dir) / results_mod.RESULTS
    try:
        return results_mod.read(run_dir)
    except FileNotFoundError:
        raise ResumeError(
            f"{path}: not found; --resume takes a run directory that fmnist-job train created"
        ) from None
    except results_mod.ResultsError as e:
        raise ResumeError(f"{e}; cannot resume from it") from None


class RunDir:
    """Where one run keeps its files (see the module's docstring)."""

    def __init__(self, path: Path):
        self.path = path if storage.is_remote(path) else Path(path).resolve()
        self.results = self.path / results_mod.RESULTS

    @property
    def run_id(self) -> str:
        return self.path.name

    def checkpoint(self, name: str) -> str:
        return str(self.path / "checkpoints" / name)

    def save_weights(self, name: str, weights) -> None:
        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, *weights)
        storage.write_bytes(self.path / "weights" / f"{name}.npz", buf.getvalue())

    def load_weights(self, name: str) -> list:
        import numpy as np

        data = (self.path / "weights" / f"{name}.npz").read_bytes()
        with np.load(io.BytesIO(data)) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]

    def has_weights(self, name: str) -> bool:
        return (self.path / "weights" / f"{name}.npz").exists()

    def save_val_probs(self, name: str, probs) -> None:
        """The variant's validation probabilities, for ensemble selection (and a resume's)."""
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, probs)
        storage.write_bytes(self.path / "weights" / f"{name}.val.npy", buf.getvalue())

    def load_val_probs(self, name: str):
        """None for a variant finished before runs kept them."""
        import numpy as np

        path = self.path / "weights" / f"{name}.val.npy"
        return np.load(io.BytesIO(path.read_bytes())) if path.exists() else None

    def write(self, results: RunResults) -> None:
        results.write(self.path)
