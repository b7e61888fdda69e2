"""The exported model as `score` uses it: find the version, read its metadata, load the
SavedModel and check its signature is the one fmnist-job exports.

Reads only the export (TF Serving's layout, fmnist/core/export.py's names); never the run
directory or the sweep.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fmnist import quiet_native_stderr
from fmnist.core import export, storage
from fmnist.core.errors import ScoreError
from fmnist.ops import versions
from fmnist.scoring import images


@dataclass
class Model:
    directory: Path
    metadata: export.ExportMetadata  # class_names checked by read_metadata
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 [N, 28, 28] -> float32 [N, 10]
    keepalive: object = field(default=None, repr=False)  # the loaded SavedModel object
    # uint8 [N, 28, 28] -> (probabilities, {signal: float32 [N]}): the signals of
    # fmnist/core/calibration.py the signature returns; none for an older export.
    predict_all: Callable[[np.ndarray], tuple] | None = field(default=None, repr=False)
    signals: tuple[str, ...] = ()

    @property
    def class_names(self) -> list[str]:
        return self.metadata.class_names


def resolve_model(path: Path) -> versions.Resolved:
    """The version --model names, and why it is the one used.

    Args:
        path: a version directory, or the export base: its `stable` version (labels in
            models.config, as TF Serving serves them), else its newest.

    Returns:
        The version directory with its labels (`.path`, `.why`).

    Raises:
        ScoreError: no such directory, no version in it, or an unusable models.config.
    """
    if (path / "saved_model.pb").is_file():
        return versions.used_version(path)
    if not path.exists():
        raise ScoreError(
            f"--model {path}: no such directory; train and export a model "
            f"first (fmnist-job train) or point --model at one"
        )
    if not versions.disk_versions(path):
        raise ScoreError(
            f"--model {path}: not a SavedModel (no saved_model.pb) and no "
            f"integer version directories with one under it"
        )
    try:
        return versions.resolve(path)
    except versions.VersionsError as e:
        raise ScoreError(f"--model: {e}") from None


def read_metadata(version: Path) -> export.ExportMetadata:
    """fmnist.json written by the export: the class names are the model's own.

    Raises:
        ScoreError: missing, unreadable, or without 10 class names.
    """
    bad_names = ScoreError(f"--model {version}: {export.METADATA} must list 10 class_names")
    try:
        meta = export.read_metadata(version)
    except FileNotFoundError:
        raise ScoreError(
            f"--model {version}: no {export.METADATA} (class names); "
            f"not exported by fmnist-job train"
        ) from None
    except export.MetadataError as e:
        if e.field in ("", "class_names"):
            raise bad_names from None
        raise ScoreError(f"--model {version}: cannot read {export.METADATA}: {e}") from None
    except (OSError, ValueError) as e:
        raise ScoreError(
            f"--model {version}: cannot read {export.METADATA}: {images.describe(e)}"
        ) from None
    if meta.class_names is None:
        raise bad_names
    return meta


def load_model(version: Path, metadata: export.ExportMetadata, threads: int | None = None) -> Model:
    """Load with tf.saved_model.load (a graph and variables: nothing is unpickled) and
    check the serving signature is the one fmnist-job exports."""
    with quiet_native_stderr():
        # TensorFlow prints start-up lines (oneDNN, CUDA) straight to file descriptor 2,
        # before any logging setting applies; a scoring run's stderr is for its errors.
        import tensorflow as tf

        if threads:
            with contextlib.suppress(RuntimeError):  # already initialized in this process
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
        try:
            # A version in a bucket is downloaded first: TensorFlow's own filesystems
            # read s3:// only with tensorflow-io. The variables are read into memory at
            # load, so the copy can go right after.
            with storage.local_copy(version, prefix="fmnist-model-") as local:
                loaded = tf.saved_model.load(str(local))
        except Exception as e:  # noqa: BLE001 - any load failure means "not a usable model"
            raise ScoreError(
                f"--model {version}: cannot load the SavedModel: {images.describe(e)}"
            ) from None
        signature = _check_signature(loaded, version)
        # The first call initializes the runtime (and prints more); do it here.
        signature(**{export.INPUT_KEY: tf.zeros([1, 28, 28], tf.uint8)})

    def predict(x: np.ndarray) -> np.ndarray:
        out = signature(**{export.INPUT_KEY: tf.convert_to_tensor(x, tf.uint8)})
        return out[export.OUTPUT_KEY].numpy()

    signals = signal_names(signature)

    def predict_all(x: np.ndarray) -> tuple[np.ndarray, dict]:
        out = signature(**{export.INPUT_KEY: tf.convert_to_tensor(x, tf.uint8)})
        return out[export.OUTPUT_KEY].numpy(), {k: out[k].numpy() for k in signals}

    # The signature reads the loaded object's variables: keep that object alive with it.
    return Model(
        version,
        metadata,
        predict,
        keepalive=loaded,
        predict_all=predict_all,
        signals=tuple(signals),
    )


def signal_names(signature) -> list[str]:
    """The `uncertain` signals among the signature's outputs (float32 [N] each)."""
    from fmnist.core.calibration import SIGNALS

    outputs = signature.structured_outputs
    return [k for k in SIGNALS if k in outputs and outputs[k].shape.rank == 1]


def _check_signature(loaded, version: Path):
    import tensorflow as tf

    signature = getattr(loaded, "signatures", {}).get(export.SIGNATURE)
    if signature is None:
        raise ScoreError(f"--model {version}: no '{export.SIGNATURE}' signature")
    _, inputs = signature.structured_input_signature
    spec = inputs.get(export.INPUT_KEY)
    if (
        len(inputs) != 1
        or spec is None
        or spec.dtype != tf.uint8
        or spec.shape.rank != 3
        or spec.shape[1:] != [28, 28]
    ):
        raise ScoreError(
            f"--model {version}: signature '{export.SIGNATURE}' must take only "
            f"'{export.INPUT_KEY}': uint8 [N, 28, 28]; it takes {inputs}"
        )
    out = signature.structured_outputs.get(export.OUTPUT_KEY)
    if out is None or out.dtype != tf.float32 or out.shape.rank != 2 or out.shape[1] != 10:
        raise ScoreError(
            f"--model {version}: signature '{export.SIGNATURE}' must return "
            f"'{export.OUTPUT_KEY}': float32 [N, 10]"
        )
    return signature
