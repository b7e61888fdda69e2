"""results.json: one run's record, and each variant's result in it.

`fmnist-job train` writes the record after every change (so a killed run loses nothing),
`train --resume` reads it back to finish the run, and `runs list` summarizes it. All three
go through these models: one schema, written with `dump` and read with `read`.

Fields a record never had stay out of the file (`exclude_unset`): a failed variant has no
accuracies, a run that is still going no `wall_seconds`, which is how `runs list` tells an
incomplete run from a finished one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from fmnist.core import storage
from fmnist.ops.gate import GateDecision

RESULTS = "results.json"


class _Record(BaseModel):
    # Older runs may carry keys this version no longer writes: they are dropped on read.
    model_config = ConfigDict(extra="ignore")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class VariantResult(_Record):
    """One variant of a sweep: finished (`ok`), `failed` (its error), `interrupted`, or
    `stopped` by successive halving at a rung before the last."""

    name: str
    config: dict[str, Any]
    status: Literal["ok", "failed", "interrupted", "stopped"]
    error: str | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    epochs_run: int | None = None
    optimizer_steps: int | None = None
    attempts: int | None = None
    resumed_from_epoch: int | None = None
    best_epoch: int | None = None
    history: dict[str, list[float]] | None = None
    train_seconds: float | None = None
    # The plan's figure (fmnist/training/schedule.py) beside the measured one.
    estimate_seconds: float | None = None
    # TensorFlow's import in a new worker process; about 0 in one that trained before.
    setup_seconds: float | None = None
    epoch_seconds: list[float] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    samples_per_second: float | None = None
    host: str | None = None
    # Containers on one machine share a host name; the Ray node id tells nodes apart.
    node_id: str | None = None
    device: str | None = None
    # What TensorFlow ran with, not what was asked: a reused worker keeps its first threads.
    threads: int | None = None
    # The CPU time of the variant's tasks (all their threads), summed over its rungs.
    cpu_seconds: float | None = None
    # Successive halving: the rung (index) the variant was last sent to, and its
    # validation accuracy at each rung reached.
    rung: int | None = None
    rung_accuracies: list[float] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class RunSettings(_Record):
    """What a resumed run must keep: its checkpoints were made with these."""

    val_size: int
    limit: int | None = None
    ensemble: int = 1
    data_dir: str | None = None
    # [search]: {scheduler, reduction_factor, min_epochs, max_epochs, rungs}; None: off.
    search: dict[str, Any] | None = None


class ECEPair(_Record):
    """Expected calibration error of one split, before and after the temperature."""

    before: float
    after: float


class Calibration(_Record):
    """The temperature fitted on validation at export, and what it did to the ECE."""

    temperature: float
    ece_bins: int
    ece: dict[Literal["validation", "test"], ECEPair]


class UncertainRule(_Record):
    """The `uncertain` flag's thresholds (chosen on validation) and how it does there and
    on test: the share flagged, and the accuracy of all rows and of the rows not flagged.
    fmnist/core/calibration.py SIGNALS names the signals; exports before the outlier
    score had a threshold per signal."""

    min_confidence: float
    max_outlier_score: float | None = None
    max_reconstruction_error: float | None = None
    max_feature_distance: float | None = None
    min_contrast: float | None = None
    min_grain: float | None = None
    max_gaps: float | None = None
    shares: dict[str, float]
    validation_flagged: float
    validation_accuracy: float
    validation_accuracy_not_flagged: float | None = None
    test_flagged: float
    test_accuracy: float
    test_accuracy_not_flagged: float | None = None


class CalibrationRecord(_Record):
    """results.json's `calibration`: the same records as the export's fmnist.json."""

    calibration: Calibration
    uncertain: UncertainRule


class RunResults(_Record):
    """A run's results.json."""

    run_id: str
    started_at: str
    # Seconds from the start to each step: where the time outside training goes.
    timeline: dict[str, float] = {}
    sweep_file: str | None = None
    sweep: list[dict[str, Any]]
    settings: RunSettings
    dataset_sha256: dict[str, str]  # per release file
    address: str
    train_size: int
    val_size: int
    test_size: int
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    threads_per_worker: int | None = None
    slots: int | None = None
    order: list[str] = []
    variants: list[VariantResult] = []
    # [[study]]: each asked variant's trial, {variant: {study, number}}, and those told.
    trials: dict[str, dict[str, Any]] = {}
    told: list[str] = []
    interrupted: str | None = None
    best: str | None = None
    ensemble: dict[str, Any] | None = None
    export: str | None = None
    exported_model_test: dict[str, Any] | None = None
    calibration: CalibrationRecord | None = None
    gate: GateDecision | None = None
    wall_seconds: float | None = None
    cpus_used: float | None = None
    floor_seconds: float | None = None
    wall_over_floor: float | None = None

    def finished(self) -> list[VariantResult]:
        return [r for r in self.variants if r.ok]

    def variant(self, name: str | None) -> VariantResult | None:
        return next((r for r in self.variants if r.name == name), None)

    def write(self, run_dir: Path) -> None:
        storage.write_json(storage.as_location(run_dir) / RESULTS, self.dump())


class ResultsError(Exception):
    """A results.json that is missing, not JSON or not a run's record: one line."""


def read(run_dir: Path) -> RunResults:
    """The record in `run_dir`/results.json. Raises FileNotFoundError when there is none,
    ResultsError (one line naming the file) when it cannot be read as a run's record."""
    path = storage.as_location(run_dir) / RESULTS
    try:
        return RunResults.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ResultsError(f"{path}: unreadable ({e.strerror or e})") from None
    except ValidationError as e:
        raise ResultsError(f"{path}: {_first_problem(e)}") from None


def _first_problem(e: ValidationError) -> str:
    error = e.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    if error["type"].startswith("json"):
        return f"not JSON ({error['msg']})"
    return (
        f"not a run's results ({where}: {error['msg'].lower()})"
        if where
        else f"not a run's results ({error['msg'].lower()})"
    )
