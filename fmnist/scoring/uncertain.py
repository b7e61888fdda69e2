"""`score`'s `uncertain` column: which rows not to trust.

A row is uncertain when its (calibrated) confidence is below the threshold, or when one
of the export's out-of-distribution signals is past its own (fmnist/core/calibration.py
SIGNALS). The thresholds were chosen on the validation split at export and travel in
fmnist.json's "uncertain" record; --min-confidence replaces the confidence one.

An export made before calibration has no such record (and no signals): its rows are
flagged from DEFAULT_MIN_CONFIDENCE (or --min-confidence) alone, and `note` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmnist.core import calibration
from fmnist.core.errors import ScoreError
from fmnist.core.export import ExportMetadata

DEFAULT_MIN_CONFIDENCE = 0.5  # for exports without thresholds: below it, uncertain


@dataclass
class Rule:
    limits: dict[str, float]  # "min_confidence", "max_<signal>" / "min_<signal>"
    note: str | None = None  # said once on stderr when the rule is a fallback

    @property
    def min_confidence(self) -> float:
        return self.limits["min_confidence"]

    def flags(self, probs: np.ndarray, signals: dict[str, np.ndarray]) -> np.ndarray:
        """[N] bool: uncertain rows of one batch (probabilities [N, 10], the signals)."""
        if not len(probs):
            return np.zeros(0, bool)
        return calibration.flags(probs.max(axis=1), signals, self.limits)


def check(min_confidence: float | None) -> None:
    """--min-confidence is a probability (ScoreError otherwise, before any scoring)."""
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ScoreError(f"--min-confidence must be between 0 and 1, got {min_confidence}")


def rule(
    metadata: ExportMetadata, signals: tuple[str, ...], min_confidence: float | None = None
) -> Rule:
    """The flag of an export, from its fmnist.json and the signals its signature returns.

    Args:
        metadata: the export's fmnist.json.
        signals: the signal outputs the SavedModel has (savedmodel.Model.signals).
        min_confidence: --min-confidence, replacing the export's confidence threshold.

    Returns:
        The Rule; its `note` is set for an export without thresholds or signals.
    """
    check(min_confidence)
    record = metadata.uncertain
    limits = {}
    if isinstance(record, dict) and isinstance(record.get("min_confidence"), (int, float)):
        limits = {
            k: float(v)
            for k, v in record.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and (
                k == "min_confidence"
                or k.split("_", 1)[-1] in signals
                and k.split("_", 1)[0] in ("min", "max")
            )
        }
    note = None
    if not limits:
        limits = {"min_confidence": DEFAULT_MIN_CONFIDENCE}
        note = (
            f"score: this export has no calibration (made before fmnist.json had "
            f"'uncertain' thresholds): uncertain means confidence below "
            f"{min_confidence if min_confidence is not None else DEFAULT_MIN_CONFIDENCE:.2f}"
            f" only; export again to flag what is not clothing"
        )
    if min_confidence is not None:
        limits["min_confidence"] = float(min_confidence)
    return Rule(limits, note)
