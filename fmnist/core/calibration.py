"""Calibrated confidence and the `uncertain` flag's numbers, in NumPy.

Temperature scaling (Guo, Pleiss, Sun, Weinberger, "On calibration of modern neural
networks", ICML 2017): one scalar T divides the log-probabilities before the softmax,
fitted on the validation split by minimising the negative log-likelihood. T changes
no prediction (argmax is unchanged), only how sure each one claims to be. softmax(log p
/ T) works on a single net's probabilities and on an ensemble's averaged ones alike.

The expected calibration error (ECE) is the usual one: 15 equal-width bins of the top
probability, the gap between accuracy and mean confidence in each, weighted by the bin's
share of the items.

Training fits T and the flag's thresholds here (fmnist/training/tasks.py); scoring
applies the thresholds (fmnist/scoring/uncertain.py). NumPy only.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
T_RANGE = (0.05, 20.0)  # the search interval for T; the fit never reaches its ends
EPS = 1e-12


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable for large values."""
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def log_probs(probs: np.ndarray) -> np.ndarray:
    """log p, floored at log(1e-12) so a zero probability stays finite."""
    return np.log(np.clip(np.asarray(probs, np.float64), EPS, None))


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the calibrated probabilities."""
    return np.exp(log_softmax(log_probs(probs) / temperature))


def nll(logp: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels `y` under softmax(logp / T)."""
    y = np.asarray(y, np.int64)
    return float(-log_softmax(logp / temperature)[np.arange(len(y)), y].mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray, tol: float = 1e-4) -> float:
    """The temperature minimising the validation NLL of softmax(log p / T).

    Golden-section search on log T. The NLL is convex in 1/T (a log-sum-exp of a linear
    function minus a linear term), so it has one minimum along log T too.

    Args:
        probs: [N, 10] probabilities on the validation split (a net's or an ensemble's).
        y: [N] labels.
        tol: width of the final bracket, in log T.

    Returns:
        T > 0: above 1 softens overconfident probabilities, below 1 sharpens.
    """
    logp = log_probs(probs)
    if len(logp) == 0:
        raise ValueError("no validation items to fit a temperature on")
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logp, y, np.exp(a)), nll(logp, y, np.exp(b))
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logp, y, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logp, y, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over equal-width confidence bins of
    |accuracy - mean confidence| x the bin's share of the items.

    Args:
        probs: [N, C] probabilities.
        y: [N] labels.
        bins: number of equal-width bins on [0, 1] (15, as Guo et al.).

    Returns:
        The ECE in [0, 1].
    """
    probs = np.asarray(probs, np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y)
    # Bin k holds (k/bins, (k+1)/bins]; a confidence of exactly 0 joins the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for k in range(bins):
        inside = which == k
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


# -----------------------------------------------------------------------------
# The out-of-distribution signals' constants (baked into the SavedModel), and the flag

PCA_COMPONENTS = 100  # input-space components kept; the residual is what they miss
COVARIANCE_RIDGE = 1e-3


def pca(x: np.ndarray, components: int = PCA_COMPONENTS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and principal axes of images scaled to [0, 1].

    Args:
        x: [N, 28, 28] uint8 training images.
        components: how many axes to keep.

    Returns:
        (mean [784], axes [components, 784]), float32, axes orthonormal.
    """
    flat = np.asarray(x, np.float64).reshape(len(x), -1) / 255.0
    mean = flat.mean(axis=0)
    centred = flat - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    axes = vectors[:, ::-1][:, :components].T
    return mean.astype(np.float32), np.ascontiguousarray(axes, np.float32)


def reconstruction_error(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Squared distance of each image (scaled to [0, 1]) from the PCA subspace."""
    flat = np.asarray(x, np.float64).reshape(len(x), -1) / 255.0 - mean
    return ((flat - (flat @ axes.T) @ axes) ** 2).sum(axis=1)


def class_gaussian(
    features: np.ndarray, y: np.ndarray, classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the shared precision matrix of penultimate features (Lee, Lee,
    Lee, Shin, "A simple unified framework for detecting out-of-distribution samples",
    NeurIPS 2018), a small ridge keeping the covariance invertible.

    Returns:
        (means [classes, d], precision [d, d]), float32.
    """
    f = np.asarray(features, np.float64)
    y = np.asarray(y, np.int64)
    means = np.stack([f[y == c].mean(axis=0) for c in range(classes)])
    centred = f - means[y]
    cov = centred.T @ centred / len(f) + COVARIANCE_RIDGE * np.eye(f.shape[1])
    return means.astype(np.float32), np.linalg.inv(cov).astype(np.float32)


def feature_distance(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distance (squared) to the nearest class mean."""
    d = np.asarray(features, np.float64)[:, None, :] - means[None]
    return np.einsum("nci,ij,ncj->nc", d, precision, d).min(axis=1)


def contrast(x: np.ndarray) -> np.ndarray:
    """Standard deviation of each image's pixels, scaled to [0, 1]: about 0 for a blank."""
    return (np.asarray(x, np.float64).reshape(len(x), -1) / 255.0).std(axis=1)


# The SavedModel's extra outputs, and how each flags: above its `max_` threshold, or
# below its `min_` one. Shares of the validation split each flags on its own.
SIGNALS = {"reconstruction_error": "max", "feature_distance": "max", "contrast": "min"}
CONFIDENCE_SHARE = 0.065
SIGNAL_SHARES = {"reconstruction_error": 0.02, "feature_distance": 0.015, "contrast": 0.002}


def thresholds(confidence: np.ndarray, signals: dict[str, np.ndarray]) -> dict[str, float]:
    """The flag's thresholds, chosen on the validation split: the confidence below which
    CONFIDENCE_SHARE of the items lie, and for each signal the value beyond which its
    share in SIGNAL_SHARES lies.

    Args:
        confidence: [N] calibrated top probabilities on the validation split.
        signals: {name in SIGNALS: [N] values on the validation split}.

    Returns:
        {"min_confidence": c, "max_reconstruction_error": ..., "max_feature_distance":
        ..., "min_contrast": ...}: the keys `flags` reads.
    """
    out = {"min_confidence": float(np.quantile(confidence, CONFIDENCE_SHARE))}
    for name, side in SIGNALS.items():
        share = SIGNAL_SHARES[name]
        q = 1.0 - share if side == "max" else share
        out[f"{side}_{name}"] = float(np.quantile(np.asarray(signals[name], np.float64), q))
    return out


def flags(
    confidence: np.ndarray, signals: dict[str, np.ndarray], limits: dict[str, float]
) -> np.ndarray:
    """True where an item is uncertain: its confidence below `min_confidence`, or any
    signal in `limits` past its threshold (signals without a threshold are ignored).

    Args:
        confidence: [N] top probabilities.
        signals: {name: [N] values}; may be empty (an export without the signals).
        limits: {"min_confidence": c, "max_<signal>" / "min_<signal>": value}.

    Returns:
        [N] bool.
    """
    out = np.asarray(confidence) < limits["min_confidence"]
    for name, side in SIGNALS.items():
        key = f"{side}_{name}"
        if key in limits and name in signals:
            values = np.asarray(signals[name])
            out |= values > limits[key] if side == "max" else values < limits[key]
    return out
