"""The serving SavedModel built from trained variants' weights (one, or an ensemble).

It is published by fmnist/core/export.py (TF Serving's layout, versions renamed into
place); fmnist/scoring reads it back through the same names.
"""

from __future__ import annotations

from pathlib import Path

from fmnist.core.export import INPUT_KEY, OUTPUT_KEY, SIGNATURE, publish


def save_model(variant, weights, directory: Path) -> None:
    """The serving SavedModel: uint8 images [N, 28, 28] in, probabilities [N, 10] out."""
    save_ensemble([(variant, weights, 1.0)], directory)


def save_ensemble(members: list[tuple], directory: Path) -> None:
    """One SavedModel, the same signature, computing the weighted mean of its members'
    probabilities in the graph: [(variant, weights, member weight)], weights summing to
    1. A single member with weight 1 is exactly that model (x * 1.0 is x in floats)."""
    import keras
    import tensorflow as tf

    from fmnist.training.model import build

    nets = []
    for variant, arrays, share in members:
        net = build(variant)
        net.set_weights(arrays)
        nets.append((net, float(share)))
    archive = keras.export.ExportArchive()
    for net, _ in nets:
        archive.track(net)

    def serve(images):
        return {OUTPUT_KEY: tf.add_n([share * tf.nn.softmax(net(images, training=False))
                                     for net, share in nets])}

    archive.add_endpoint(
        name=SIGNATURE, fn=serve,
        input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name=INPUT_KEY)],
    )
    archive.write_out(str(directory), verbose=False)


def export(variant, weights, metadata: dict, base: Path) -> Path:
    """Build the model from `weights` and publish it as a new version under `base`."""
    return publish(lambda staging: save_model(variant, weights, staging), metadata, base)
