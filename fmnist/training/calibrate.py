"""Calibration at export: what the export task fits before it builds the SavedModel, and
how it describes the result.

    fit: the temperature on the validation split (fmnist/core/calibration.py), a PCA of
         the training images, the class Gaussians of the first member's penultimate
         features, a bank of training items' features for the kNN signal, the
         direction from training items' features to their scrambled copies' and each
         signal's sorted values on the validation split (for the outlier score's
         p-values): the constants the SavedModel bakes in
         (fmnist/training/savedmodel.py)
    describe: from the built SavedModel's own outputs on validation and test, the
         `uncertain` thresholds (chosen on validation) and the figures of fmnist.json's
         "calibration" and "uncertain" keys

Runs in the export task (TensorFlow); the test set chooses nothing, it is only described.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmnist.core import calibration, data

BATCH = 2048


@dataclass
class Calibrated:
    """The constants the SavedModel computes its calibrated outputs with."""

    temperature: float
    pca_mean: np.ndarray  # [784]
    pca_axes: np.ndarray  # [components, 784]
    feature_means: np.ndarray  # [10, d]: the first member's penultimate features
    feature_precision: np.ndarray  # [d, d]
    feature_bank: np.ndarray  # [KNN_BANK, d] float16, unit length
    scramble_direction: np.ndarray  # [d]: intact towards scrambled training items
    tables: dict[str, np.ndarray]  # calibration.COMPONENTS -> sorted validation values


def features_model(net):
    """The net up to its last layer: the penultimate features."""
    import keras

    return keras.Model(net.inputs[0], net.layers[-2].output)


def _batched(fn, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i : i + BATCH])) for i in range(0, len(x), BATCH)])


def raw_probabilities(nets: list[tuple], x: np.ndarray) -> np.ndarray:
    """The members' weighted mean probabilities, before any temperature."""
    import tensorflow as tf

    total = 0.0
    for net, share in nets:
        total = total + share * _batched(lambda b, n=net: tf.nn.softmax(n(b, training=False)), x)
    return total


def fit(nets: list[tuple], splits: data.Splits) -> Calibrated:
    """The temperature (validation NLL), the PCA of the training images, the class
    Gaussians of the first (heaviest) member's features on the training images, the kNN
    signal's bank of training features, the direction from those features to those of
    scrambled training items, and the signals' values on the validation split
    (NumPy, as the SavedModel computes them).

    Args:
        nets: [(built Keras net with its weights, share)], shares summing to 1.
        splits: the run's data.

    Returns:
        The constants for savedmodel.save_ensemble.
    """
    temperature = calibration.fit_temperature(raw_probabilities(nets, splits.x_val), splits.y_val)
    mean, axes = calibration.pca(splits.x_train)
    extract = features_model(nets[0][0])
    feats = _batched(lambda b: extract(b, training=False), splits.x_train)
    means, precision = calibration.class_gaussian(feats, splits.y_train)
    bank = calibration.feature_bank(feats)
    scrambled = calibration.scrambled_items(splits.x_train)
    direction = calibration.scramble_direction(
        feats, _batched(lambda b: extract(b, training=False), scrambled)
    )
    x = splits.x_val
    val_feats = _batched(lambda b: extract(b, training=False), x)
    values = {
        "reconstruction_error": calibration.reconstruction_error(x, mean, axes),
        "feature_distance": calibration.feature_distance(val_feats, means, precision),
        "knn_similarity": calibration.knn_similarity(val_feats, bank),
        "contrast": calibration.contrast(x),
        "extent": calibration.extent(x),
        "fill": calibration.fill(x),
        "scrambled_score": calibration.scrambled_score(val_feats, direction),
    }
    tables = {k: np.sort(v).astype(np.float32) for k, v in values.items()}
    return Calibrated(temperature, mean, axes, means, precision, bank, direction, tables)


def describe(
    calibrated: Calibrated, raw: dict[str, np.ndarray], served: dict[str, dict], splits: data.Splits
) -> dict:
    """fmnist.json's "calibration" and "uncertain" records.

    Args:
        calibrated: what the SavedModel was built with.
        raw: {"validation", "test"}: probabilities before the temperature.
        served: {"validation", "test"}: the SavedModel's outputs (probabilities and each
            signal of calibration.SIGNALS) on those splits.
        splits: the run's data (labels).

    Returns:
        {"calibration": {temperature, ece_bins, ece: {split: {before, after}}},
         "uncertain": {thresholds..., figures...}}.
    """
    labels = {"validation": splits.y_val, "test": splits.y_test}
    ece = {
        split: {
            "before": calibration.ece(raw[split], y),
            "after": calibration.ece(served[split]["probabilities"], y),
        }
        for split, y in labels.items()
    }
    val = served["validation"]
    limits = calibration.thresholds(
        val["probabilities"].max(axis=1),
        val[calibration.OUTLIER_SCORE],
        val.get("grain"),
        val.get("gaps"),
    )
    figures = {}
    for split, y in labels.items():
        out = served[split]
        flagged = calibration.flags(out["probabilities"].max(axis=1), out, limits)
        right = out["probabilities"].argmax(axis=1) == y
        figures[split] = {
            "flagged": float(flagged.mean()),
            "accuracy": float(right.mean()),
            "accuracy_not_flagged": float(right[~flagged].mean()) if (~flagged).any() else None,
        }
    return {
        "calibration": {
            "temperature": calibrated.temperature,
            "ece_bins": calibration.ECE_BINS,
            "ece": ece,
        },
        "uncertain": {
            **limits,
            "shares": {
                "confidence": calibration.CONFIDENCE_SHARE,
                calibration.OUTLIER_SCORE: calibration.OUTLIER_SHARE,
                **({"grain": calibration.GRAIN_SHARE} if "min_grain" in limits else {}),
                **({"gaps": calibration.GAPS_SHARE} if "max_gaps" in limits else {}),
            },
            **{f"{split}_{k}": v for split, f in figures.items() for k, v in f.items()},
        },
    }
