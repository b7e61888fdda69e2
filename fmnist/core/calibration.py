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


KNN_BANK = 5000  # training items whose features the SavedModel keeps for the kNN signal


def normalised(features: np.ndarray) -> np.ndarray:
    """Each feature vector scaled to unit length (a zero vector stays zero)."""
    f = np.asarray(features, np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)


def feature_bank(features: np.ndarray, size: int = KNN_BANK, seed: int = 0) -> np.ndarray:
    """The kNN signal's reference set (Sun, Ming, Zhu, Li, "Out-of-distribution
    detection with deep nearest neighbors", ICML 2022): `size` training items' features
    drawn at random, unit length, float16 to halve the export's extra bytes.

    Args:
        features: [N, d] penultimate features of the training images.
        size: how many to keep (all of them if N is smaller).
        seed: which ones.

    Returns:
        [min(size, N), d] float16.
    """
    f = np.asarray(features)
    pick = np.sort(np.random.default_rng(seed).permutation(len(f))[:size])
    return normalised(f[pick]).astype(np.float16)


def knn_similarity(features: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Cosine similarity of each item's features to its nearest neighbour in `bank`:
    near 1 for an item like the training images, lower for one unlike any of them."""
    return (normalised(features) @ np.asarray(bank, np.float32).T).max(axis=1)


SCRAMBLE_TILE = 4  # px: the side of the tiles a scrambled item is cut into
SCRAMBLED_ITEMS = 20000  # training items scrambled to fit the direction


def scrambled_items(x: np.ndarray, n: int = SCRAMBLED_ITEMS, seed: int = 0) -> np.ndarray:
    """Synthetic outliers made from clothing alone: `n` training items drawn at random,
    each cut into SCRAMBLE_TILE-pixel tiles put back in a random order. Their pixels and
    local texture are the data set's; the item's structure is gone.

    Args:
        x: [N, 28, 28] uint8 training images.
        n: how many to make, at most N (a small run's export gains nothing from
            scrambling each of its items many times over).
        seed: which items and which orders.

    Returns:
        [min(n, N), 28, 28] uint8.
    """
    rng = np.random.default_rng(seed)
    n = min(n, len(x))
    t, g = SCRAMBLE_TILE, 28 // SCRAMBLE_TILE
    picked = np.asarray(x)[rng.integers(len(x), size=n)]
    tiles = picked.reshape(n, g, t, g, t).transpose(0, 1, 3, 2, 4).reshape(n, g * g, t, t)
    order = np.argsort(rng.random((n, g * g)), axis=1)
    tiles = np.take_along_axis(tiles, order[:, :, None, None], axis=1)
    return tiles.reshape(n, g, g, t, t).transpose(0, 1, 3, 2, 4).reshape(n, 28, 28)


def scramble_direction(features: np.ndarray, scrambled: np.ndarray) -> np.ndarray:
    """Fisher's linear discriminant from the training items' penultimate features to
    their scrambled copies' (outlier exposure with outliers made from clothing, never
    from the non-clothing test sets): Sigma^-1 (mean scrambled - mean intact), Sigma the
    two sets' average covariance with a small ridge.

    Args:
        features: [N, d] features of training items.
        scrambled: [M, d] features of scrambled_items.

    Returns:
        [d] float32: an item's features projected on it (`scrambled_score`) are higher
        the more it looks like a scrambled item than an intact one.
    """
    a, b = np.asarray(features, np.float64), np.asarray(scrambled, np.float64)
    cov = (np.cov(a.T, bias=True) + np.cov(b.T, bias=True)) / 2
    cov += COVARIANCE_RIDGE * np.eye(a.shape[1])
    return np.linalg.solve(cov, b.mean(axis=0) - a.mean(axis=0)).astype(np.float32)


def scrambled_score(features: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Each item's features projected on scramble_direction: unusual when high."""
    return np.asarray(features, np.float64) @ np.asarray(direction, np.float64)


def contrast(x: np.ndarray) -> np.ndarray:
    """Standard deviation of each image's pixels, scaled to [0, 1]: about 0 for a blank."""
    return (np.asarray(x, np.float64).reshape(len(x), -1) / 255.0).std(axis=1)


INK = 25  # a pixel above this level (of 255) is part of the item


def _rows_cols(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ink = np.asarray(x).reshape(len(x), 28, 28) > INK
    return ink, ink.any(axis=2), ink.any(axis=1)


def extent(x: np.ndarray) -> np.ndarray:
    """The fewer of the rows and the columns holding ink: a Fashion-MNIST item fills
    one side of the frame and most of the other; a strip (a landscape, a line of text)
    or a blank does not."""
    _, rows, cols = _rows_cols(x)
    return np.minimum(rows.sum(axis=1), cols.sum(axis=1)).astype(np.float64)


def fill(x: np.ndarray) -> np.ndarray:
    """The share of the ink's bounding box that is ink (0 for a blank): near 1 for a
    filled rectangle (noise, a photo with no item in it)."""
    ink, rows, cols = _rows_cols(x)

    def span(a):
        return np.where(a.any(axis=1), 28 - a.argmax(axis=1) - a[:, ::-1].argmax(axis=1), 28)

    return ink.sum(axis=(1, 2)) / (span(rows) * span(cols)).astype(np.float64)


GRAIN = 2.55  # levels (of 255): a pixel further than this from its 3x3 mean is grain


def grain(x: np.ndarray) -> np.ndarray:
    """The share of the item's inside (its ink less a one-pixel rim) whose pixels stand
    out from their 3x3 neighbourhood's mean by more than GRAIN levels: the fabric's weave,
    print, seams and folds. A face, a plate or a cup drawn as a smoothly shaded solid shape
    has almost none; an image with no inside has 0.

    Args:
        x: [N, 28, 28] uint8 images.

    Returns:
        [N] float64 in [0, 1]; unusual when low.
    """
    a = np.asarray(x, np.float64).reshape(len(x), 28, 28)
    # Sums of the 3x3 neighbourhood, the edge pixels repeated beyond the frame; compared
    # as 9 * pixel - sum, whole numbers, so the SavedModel's float32 gives the same.
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)), mode="edge")
    near = sum(p[:, i : i + 28, j : j + 28] for i in range(3) for j in range(3))
    stands_out = np.abs(9.0 * a - near) > 9.0 * GRAIN
    ink = np.pad(a > INK, ((0, 0), (1, 1), (1, 1)))  # outside the frame is not ink
    inside = np.ones_like(a, bool)
    for i in range(3):
        for j in range(3):
            inside &= ink[:, i : i + 28, j : j + 28]
    return (stands_out & inside).sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1)


def gaps(x: np.ndarray) -> np.ndarray:
    """The rows and the columns without ink between the first and the last that hold ink,
    counted together (0 for an image without ink). A Fashion-MNIST item is one piece, or
    two close together; a page of thumbnails, lines of text or a photo of a cat whose
    body and head come apart convert to pieces stacked with empty lines between them.

    Args:
        x: [N, 28, 28] uint8 images.

    Returns:
        [N] float64, whole numbers; unusual when high.
    """
    _, rows, cols = _rows_cols(x)

    def empty_inside(a):
        span = np.where(a.any(axis=1), 28 - a.argmax(axis=1) - a[:, ::-1].argmax(axis=1), 0)
        return span - a.sum(axis=1)

    return (empty_inside(rows) + empty_inside(cols)).astype(np.float64)


# The out-of-distribution signals the SavedModel computes, and the side on which each
# is unusual: above (`max`) or below (`min`) the validation split's values. Each is
# turned into a tail p-value against the validation split's own values (its `table`),
# and OUTLIER_SCORE sums their -log p (Fisher's method): an item a little unusual on
# several counts scores as high as one far out on one. An export computes its score
# from the components it was built with (those before knn_similarity: five; before
# scrambled_score: six).
COMPONENTS = {
    "reconstruction_error": "max",
    "feature_distance": "max",
    "knn_similarity": "min",
    "contrast": "min",
    "extent": "min",
    "fill": "max",
    "scrambled_score": "max",
}
OUTLIER_SCORE = "outlier_score"
# Signals with a threshold of their own beside the outlier score (sixth round): `grain`
# separates smooth solid shapes well on its own, and as one more term of the sum it
# would dilute the others; so does `gaps` (eighth round) for pieces with empty lines
# between them.
APART = {"grain": "min", "gaps": "max"}
# Every extra output `score` may read, with the side it flags on. Exports made before
# the outlier score carry thresholds for the components themselves; they still apply.
SIGNALS = {**COMPONENTS, OUTLIER_SCORE: "max", **APART}
CONFIDENCE_SHARE = 0.07
OUTLIER_SHARE = 0.025
GRAIN_SHARE = 0.0075
GAPS_SHARE = 0.005  # at most: gaps are whole numbers, so ties flag fewer


def tail_p(values: np.ndarray, table: np.ndarray, side: str) -> np.ndarray:
    """(1 + how many of the sorted validation `table` are at least as far out as each
    value, on `side`) / (1 + its length): an empirical tail p-value, never 0."""
    table = np.asarray(table)
    if side == "max":
        beyond = len(table) - np.searchsorted(table, values, side="left")
    else:
        beyond = np.searchsorted(table, values, side="right")
    return (beyond + 1.0) / (len(table) + 1.0)


def outlier_score(signals: dict[str, np.ndarray], tables: dict[str, np.ndarray]) -> np.ndarray:
    """Fisher's combination: the sum over COMPONENTS of -log tail_p.

    Args:
        signals: {component: [N] values}.
        tables: {component: sorted validation values (float32, as the SavedModel holds)}.

    Returns:
        [N] scores, >= 0; higher is less like the validation split.
    """
    return sum(
        -np.log(tail_p(np.asarray(signals[k], np.float32), tables[k], side))
        for k, side in COMPONENTS.items()
    )


def thresholds(
    confidence: np.ndarray,
    score: np.ndarray,
    grain_values: np.ndarray | None = None,
    gaps_values: np.ndarray | None = None,
) -> dict[str, float]:
    """The flag's thresholds, chosen on the validation split: the confidence below which
    CONFIDENCE_SHARE of the items lie, the outlier score above which OUTLIER_SHARE lie,
    and (for an export with the signals) the grain below which GRAIN_SHARE lie and the
    gaps above which at most GAPS_SHARE lie.

    Args:
        confidence: [N] calibrated top probabilities on the validation split.
        score: [N] outlier scores on the validation split.
        grain_values: [N] `grain` on the validation split, or None (no such threshold).
        gaps_values: [N] `gaps` on the validation split, or None (no such threshold).

    Returns:
        {"min_confidence": c, "max_outlier_score": s[, "min_grain": g][, "max_gaps": n]}:
        the keys `flags` reads.
    """
    out = {
        "min_confidence": float(np.quantile(confidence, CONFIDENCE_SHARE)),
        f"max_{OUTLIER_SCORE}": float(
            np.quantile(np.asarray(score, np.float64), 1 - OUTLIER_SHARE)
        ),
    }
    if grain_values is not None:
        out["min_grain"] = float(np.quantile(np.asarray(grain_values, np.float64), GRAIN_SHARE))
    if gaps_values is not None:
        out["max_gaps"] = float(np.quantile(np.asarray(gaps_values, np.float64), 1 - GAPS_SHARE))
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
