"""The serving SavedModel built from trained variants' weights (one, or an ensemble).

It is published by fmnist/core/export.py (TF Serving's layout, versions renamed into
place); fmnist/scoring reads it back through the same names.

Built with calibration constants (fmnist/training/calibrate.py), `probabilities` are
softmax(log p / T) and the signature has one more output per signal of
fmnist/core/calibration.py SIGNALS: `reconstruction_error` (the input's distance from the
training images' PCA subspace), `feature_distance` (Mahalanobis distance of the first
member's penultimate features to the nearest class mean), `knn_similarity` (their
cosine similarity to the nearest of a bank of training items' features), `contrast` (the
input's pixel standard deviation), `extent` and `fill` (how much of the frame and of its own
bounding box the ink covers), `scrambled_score` (the features' projection on the
direction from training items to their tile-scrambled copies), and `outlier_score`,
which combines them (Fisher's method on their tail p-values against the validation
split); and `grain` (how much of the item's inside stands out from its neighbourhood)
and `gaps` (empty rows and columns between the ink's pieces), which have thresholds of
their own. The input and `probabilities`
keep their name, dtype and shape.
"""

from __future__ import annotations

from pathlib import Path

from fmnist.core.export import INPUT_KEY, OUTPUT_KEY, SIGNATURE, publish


def save_model(variant, weights, directory: Path) -> None:
    """The serving SavedModel: uint8 images [N, 28, 28] in, probabilities [N, 10] out."""
    save_ensemble([(variant, weights, 1.0)], directory)


def build_nets(members: list[tuple]) -> list[tuple]:
    """[(variant, weights, share)] -> [(Keras net with those weights, share)]."""
    from fmnist.training.model import build

    nets = []
    for variant, arrays, share in members:
        net = build(variant)
        net.set_weights(arrays)
        nets.append((net, float(share)))
    return nets


def save_ensemble(members: list[tuple], directory: Path, calibrated=None) -> None:
    """One SavedModel, the same signature, computing the weighted mean of its members'
    probabilities in the graph: [(variant, weights, member weight)], weights summing to
    1. A single member with weight 1 is exactly that model (x * 1.0 is x in floats).
    With `calibrated` (a calibrate.Calibrated), the probabilities are temperature-scaled
    and the signals are extra outputs."""
    import keras
    import tensorflow as tf

    from fmnist.training.calibrate import features_model

    nets = build_nets(members)
    archive = keras.export.ExportArchive()
    for net, _ in nets:
        archive.track(net)
    first_features, first_head = features_model(nets[0][0]), nets[0][0].layers[-1]

    def mean_probs(logits):
        return tf.add_n([share * tf.nn.softmax(z) for z, (_, share) in zip(logits, nets)])

    def serve(images):
        if calibrated is None:
            return {OUTPUT_KEY: mean_probs([net(images, training=False) for net, _ in nets])}
        feats = first_features(images, training=False)
        probs = mean_probs(
            [first_head(feats)] + [net(images, training=False) for net, _ in nets[1:]]
        )
        return {
            OUTPUT_KEY: tf.nn.softmax(
                tf.math.log(tf.maximum(probs, 1e-12)) / calibrated.temperature
            ),
            **_signals(images, feats, calibrated),
        }

    archive.add_endpoint(
        name=SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name=INPUT_KEY)],
    )
    archive.write_out(str(directory), verbose=False)


def _signals(images, feats, c) -> dict:
    """The out-of-distribution signals, float32 [N] each, as fmnist/core/calibration.py
    computes them in NumPy."""
    import tensorflow as tf

    from fmnist.core.calibration import COMPONENTS, GRAIN, INK, OUTLIER_SCORE

    x = tf.reshape(tf.cast(images, tf.float32) / 255.0, [-1, 28 * 28])
    centred = x - tf.constant(c.pca_mean)
    axes = tf.constant(c.pca_axes)
    residual = centred - tf.matmul(tf.matmul(centred, axes, transpose_b=True), axes)
    # |f - m|^2_P = f'Pf - 2 f'Pm + m'Pm: one [d, d] product per item, not one per class.
    means, precision = tf.constant(c.feature_means), tf.constant(c.feature_precision)
    fp = tf.matmul(feats, precision)
    mpm = tf.reduce_sum(tf.matmul(means, precision) * means, axis=1)
    distance = (
        tf.reduce_sum(fp * feats, axis=1, keepdims=True)
        - 2.0 * tf.matmul(fp, means, transpose_b=True)
        + mpm[None, :]
    )
    unit = feats / tf.maximum(tf.norm(feats, axis=1, keepdims=True), 1e-6)
    bank = tf.cast(tf.constant(c.feature_bank), tf.float32)
    ink = tf.reshape(images, [-1, 28, 28]) > INK
    rows, cols = tf.reduce_any(ink, axis=2), tf.reduce_any(ink, axis=1)

    def count(a):
        return tf.reduce_sum(tf.cast(a, tf.float32), axis=1)

    def span(a):
        # From the first to the last True: 28 - (leading Falses) - (trailing Falses).
        a = tf.cast(a, tf.int32)
        lead, trail = tf.argmax(a, axis=1), tf.argmax(tf.reverse(a, axis=[1]), axis=1)
        return tf.where(tf.reduce_any(a > 0, axis=1), tf.cast(28 - lead - trail, tf.float32), 28.0)

    values = {
        "reconstruction_error": tf.reduce_sum(tf.square(residual), axis=1),
        "feature_distance": tf.reduce_min(distance, axis=1),
        "knn_similarity": tf.reduce_max(tf.matmul(unit, bank, transpose_b=True), axis=1),
        "contrast": tf.math.reduce_std(x, axis=1),
        "extent": tf.minimum(count(rows), count(cols)),
        "fill": tf.reduce_sum(tf.cast(ink, tf.float32), axis=[1, 2]) / (span(rows) * span(cols)),
        "scrambled_score": tf.reduce_sum(feats * tf.constant(c.scramble_direction), axis=1),
    }
    score = 0.0
    for name, side in COMPONENTS.items():
        table = tf.constant(c.tables[name])
        n = float(c.tables[name].shape[0])
        if side == "max":
            beyond = n - tf.cast(tf.searchsorted(table, values[name], side="left"), tf.float32)
        else:
            beyond = tf.cast(tf.searchsorted(table, values[name], side="right"), tf.float32)
        score = score - tf.math.log((beyond + 1.0) / (n + 1.0))
    gaps = (span(rows) - count(rows)) + (span(cols) - count(cols))  # 0 without ink
    return {
        **values,
        OUTLIER_SCORE: score,
        "grain": _grain(images, GRAIN, INK),
        "gaps": tf.where(tf.reduce_any(ink, axis=[1, 2]), gaps, 0.0),
    }


def _grain(images, levels: float, ink_level: int):
    """fmnist/core/calibration.py `grain`: 3x3 sums with the edge repeated (a symmetric
    pad of one pixel), the inside where all nine pixels are ink, none beyond the frame."""
    import tensorflow as tf

    def sums(p):
        # A 3x3 box sum as shifted slices of the [N, 30, 30] padded images, rows then
        # columns: element-wise adds, far cheaper on a CPU than a one-channel conv2d.
        rows = p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]
        return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]

    a = tf.reshape(tf.cast(images, tf.float32), [-1, 28, 28])
    near = sums(tf.pad(a, [[0, 0], [1, 1], [1, 1]], "SYMMETRIC"))
    stands_out = tf.abs(9.0 * a - near) > 9.0 * levels
    ink = tf.pad(tf.cast(a > ink_level, tf.float32), [[0, 0], [1, 1], [1, 1]])
    inside = sums(ink) > 8.5
    count = tf.reduce_sum(tf.cast(inside, tf.float32), axis=[1, 2])
    hits = tf.reduce_sum(tf.cast(stands_out & inside, tf.float32), axis=[1, 2])
    return hits / tf.maximum(count, 1.0)


def export(variant, weights, metadata: dict, base: Path) -> Path:
    """Build the model from `weights` and publish it as a new version under `base`."""
    return publish(lambda staging: save_model(variant, weights, staging), metadata, base)
