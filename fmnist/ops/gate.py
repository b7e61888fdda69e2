"""The quality gate: a run's winner becomes `stable` unless it is worse than the stable
version by more than the tolerance; otherwise it is labelled `candidate`.

The gate is a compare-and-set under the export dir's lock (fmnist/ops/versions.py): a run
promotes only when `stable` is still the version it was compared with, so two runs racing
cannot both promote. Its decision is one record, GateDecision, which results.json keeps
under "gate" (fmnist/ops/results.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from fmnist.core import export
from fmnist.ops import versions
from fmnist.ops.versions import CANDIDATE, STABLE, VersionsError

DEFAULT_TOLERANCE = 0.2  # accuracy points


class GateDecision(BaseModel):
    """What the gate decided for a run's exported version (results.json's "gate").

    `stable_before` is absent (unset) from an `unlabelled` record: the config could not
    be read, so there is no "before"."""

    decision: Literal["promote", "candidate", "unlabelled"]
    reason: str
    version: int
    stable_before: int | None = None
    compared_with: int | None = None  # the stable version read before training ended
    val_accuracy: float
    stable_val_accuracy: float | None = None  # the same validation split, same code
    tolerance_points: float


def decide(
    winner_val: float, stable_val: float | None, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[str, str]:
    """(decision, why): promote unless the winner is worse than stable by more than
    `tolerance` accuracy points. Accuracies are fractions (0.8912)."""
    if stable_val is None:
        return "promote", "no stable version yet"
    diff = round(100 * (winner_val - stable_val), 6)  # points; rounding: no 1e-15 verdicts
    if diff > 0:
        return "promote", f"better than stable by {diff:.2f} points"
    if diff >= -tolerance:
        return "promote", f"within {tolerance:g} points of stable ({diff:+.2f})"
    return "candidate", f"worse than stable by {-diff:.2f} points (tolerance {tolerance:g})"


def gate_baseline(base: Path) -> dict:
    """What a run's winner is compared with, read without the lock, as late as possible
    (apply_gate checks under the lock that stable has not changed since).

    Returns:
        {"version": the stable version or None, "archive": its SavedModel packed for the
        Ray task that scores it (export.pack), or None, "problem": why it cannot be
        compared, or None}.
    """
    try:
        version, path = stable_for_gate(base)
        return {"version": version, "archive": export.pack(path) if path else None, "problem": None}
    except (VersionsError, OSError) as e:  # the gate then refuses to promote
        return {"version": None, "archive": None, "problem": str(e)}


def gate(
    base: Path, version: int, built: dict, baseline: dict, tolerance: float, run_id: str
) -> GateDecision:
    """Label the new `version` from what the export task measured.

    Args:
        base: the export directory.
        version: the version just published.
        built: the export task's figures: val_accuracy, and stable_val_accuracy or
            stable_error.
        baseline: gate_baseline's record.
        tolerance: accuracy points the winner may lose against stable.
        run_id: the run, for the history's "why".

    Returns:
        The decision; `unlabelled` when models.config broke since the run began.
    """
    stable = baseline["version"]
    problem = baseline["problem"] or built.get("stable_error")
    refuse = (
        (
            f"stable version {stable if stable is not None else '?'} could not be "
            f"evaluated ({problem}); not promoted"
        )
        if problem
        else None
    )
    try:
        return apply_gate(
            base,
            version,
            built["val_accuracy"],
            stable,
            built.get("stable_val_accuracy"),
            tolerance,
            run_id,
            refuse=refuse,
        )
    except VersionsError as e:
        return GateDecision(
            decision="unlabelled",
            reason=str(e),
            version=version,
            val_accuracy=built["val_accuracy"],
            compared_with=stable,
            stable_val_accuracy=built.get("stable_val_accuracy"),
            tolerance_points=tolerance,
        )


def gate_line(record: GateDecision) -> str:
    """The gate's decision in one line."""
    val = f"val {100 * record.val_accuracy:.2f}%"
    if record.stable_val_accuracy is not None:
        val += f" vs stable v{record.compared_with} {100 * record.stable_val_accuracy:.2f}%"
    if record.decision == "promote":
        return f"gate: version {record.version} promoted to stable ({val}; {record.reason})"
    if record.decision == "candidate":
        return (
            f"gate: version {record.version} NOT promoted, labelled candidate; "
            f"stable stays version {record.stable_before} ({val}; {record.reason})"
        )
    return f"gate: version {record.version} left unlabelled: {record.reason}"


def stable_for_gate(base: Path) -> tuple[int | None, Path | None]:
    """The stable version to compare a new winner with (None: no stable yet). Read
    without the lock: `apply_gate` checks under it that stable has not changed since."""
    config = versions.read_config(base)
    if config is None or config.stable is None:
        return None, None
    path = base / str(config.stable)
    if not (path / "saved_model.pb").is_file():
        raise VersionsError(
            f"{base / versions.CONFIG}: stable is version {config.stable}, "
            f"which is not on disk; promote an existing one first"
        )
    return config.stable, path


def apply_gate(
    base: Path,
    version: int,
    winner_val: float,
    compared_with: int | None,
    stable_val: float | None,
    tolerance: float,
    run_id: str = "",
    refuse: str | None = None,
) -> GateDecision:
    """Label the newly exported `version` stable or candidate, atomically.

    Promotes only if stable is still `compared_with`, and never with `refuse` (why the
    comparison could not be made: stable could not be evaluated).

    Returns:
        The decision, as results.json records it.
    """
    decision, why = ("candidate", refuse) if refuse else decide(winner_val, stable_val, tolerance)
    with versions.locked(base):
        config, history = versions.read_state(base)
        if config.stable != compared_with:
            decision = "candidate"
            why = (
                f"stable changed to version {config.stable} while this run compared "
                f"with {compared_with if compared_with is not None else 'none'}; "
                f"not promoted (fmnist-job models promote {version} to override)"
            )
        config.versions = sorted(set(config.versions) | {version})
        before = config.stable
        if decision == "promote":
            config.labels[STABLE] = version
            if config.labels.get(CANDIDATE) == version:
                del config.labels[CANDIDATE]
            versions.write_state(base, config, history + [version], f"gate: run {run_id}")
        else:
            config.labels[CANDIDATE] = version
            versions.write_state(base, config)
    return GateDecision(
        decision=decision,
        reason=why,
        version=version,
        stable_before=before,
        compared_with=compared_with,
        val_accuracy=winner_val,
        stable_val_accuracy=stable_val,
        tolerance_points=tolerance,
    )
