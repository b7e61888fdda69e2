"""Ensemble selection: several trained variants as one model, chosen on validation.

Greedy forward selection with replacement (Caruana, Niculescu-Mizil, Crew, Ksikes,
"Ensemble selection from libraries of models", ICML 2004), as auto-sklearn and AutoGluon
build their final models: start empty; at each step add (again, if it is best) the
member whose addition gives the highest validation accuracy of the averaged
probabilities; after `size` steps keep the prefix that scored best. A member added k
times out of n steps has weight k / n.

Accuracy on a 5,000-image split moves in steps of 0.02 points, so ties are common: they
go to the lower validation log-loss, which moves smoothly. Only validation predictions
are used; the test set never chooses anything. NumPy only: the driver runs this.
"""

from __future__ import annotations

import numpy as np


def _score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, -log-loss): larger is better in both, compared in that order."""
    accuracy = float((probs.argmax(axis=1) == y).mean())
    nll = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return accuracy, -nll


def select(val_probs: dict[str, np.ndarray], y_val: np.ndarray, size: int) -> dict:
    """Weights over `val_probs`' members (name -> [N, 10] probabilities on the validation
    split), at most `size` selection steps. Returns {"weights": {name: w} summing to 1
    (members with weight 0 left out), "val_accuracy", "steps": [{"added", "val_accuracy",
    "val_log_loss"}] for every step taken, "kept_steps": the prefix kept}."""
    if not val_probs:
        raise ValueError("no members to select from")
    if size < 1:
        raise ValueError(f"ensemble size must be at least 1, got {size}")
    names = sorted(val_probs)  # a stable order: ties go to the first name
    y = np.asarray(y_val)
    total = np.zeros_like(val_probs[names[0]], dtype=np.float64)
    chosen: list[str] = []
    steps, scores = [], []
    for n in range(1, size + 1):
        best = max(names, key=lambda m: _score((total + val_probs[m]) / n, y))
        total += val_probs[best]
        chosen.append(best)
        accuracy, neg_nll = _score(total / n, y)
        steps.append({"added": best, "val_accuracy": accuracy, "val_log_loss": -neg_nll})
        scores.append((accuracy, neg_nll))
    keep = max(range(len(scores)), key=lambda i: scores[i]) + 1  # first best prefix
    counts = {m: chosen[:keep].count(m) for m in names if m in chosen[:keep]}
    return {
        "weights": {m: c / keep for m, c in counts.items()},
        "val_accuracy": scores[keep - 1][0],
        "steps": steps,
        "kept_steps": keep,
    }


def combine(probs: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The ensemble's probabilities: the weighted mean of its members'."""
    return sum(w * probs[m] for m, w in weights.items())
