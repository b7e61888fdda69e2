"""Export the winning variant as a TensorFlow SavedModel, in TF Serving's layout.

    <export-dir>/<version>/saved_model.pb, variables/, fmnist.json

The version is written under a hidden temporary name in the same directory and
renamed into place, so TF Serving, `fmnist-job score` or a concurrent sweep never sees
a half-written version. If another exporter took the version number first, the
rename fails and we take the next one.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

from fmnist.files import default_mode, write_json_atomic

METADATA = "fmnist.json"
SIGNATURE = "serving_default"
INPUT_KEY, OUTPUT_KEY = "images", "probabilities"


def versions(base: Path) -> list[int]:
    """Integer version directories under an export base, ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def save_model(variant, weights, directory: Path) -> None:
    """The serving SavedModel: uint8 images [N, 28, 28] in, probabilities [N, 10] out."""
    import keras
    import tensorflow as tf

    from fmnist.model import build

    net = build(variant)
    net.set_weights(weights)
    archive = keras.export.ExportArchive()
    archive.track(net)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda images: {OUTPUT_KEY: tf.nn.softmax(net(images, training=False))},
        input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8, name=INPUT_KEY)],
    )
    archive.write_out(str(directory), verbose=False)


def export(variant, weights, metadata: dict, base: Path) -> Path:
    """Build the model from `weights` and publish it as a new version under `base`."""
    return publish(lambda staging: save_model(variant, weights, staging), metadata, base)


def pack(directory: Path) -> bytes:
    """A SavedModel directory as one tar archive, to carry it between machines."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(directory, arcname=".")
    return buf.getvalue()


def unpack(archive: bytes, directory: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")  # refuses absolute paths and links out


def publish(write: Callable[[Path], None], metadata: dict, base: Path) -> Path:
    """Write a new version under `base` (`write` fills the SavedModel into the staging
    directory it is given), then rename it into place; returns its path."""
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        write(staging)
        write_json_atomic(staging / METADATA, metadata)
        os.chmod(staging, default_mode(0o777))
        # Fault injection for the tests: hold the finished staging dir, so a test can
        # kill the process at the last moment before the rename.
        if os.environ.get("FMNIST_TEST_EXPORT_PAUSE"):
            time.sleep(float(os.environ["FMNIST_TEST_EXPORT_PAUSE"]))
        version = (versions(base) or [0])[-1] + 1
        while True:
            target = base / str(version)
            try:
                # mkdir-then-rename would race; renaming onto a missing name is atomic,
                # and fails if a concurrent exporter already created that version.
                if target.exists():
                    raise FileExistsError(target)
                os.rename(staging, target)
                return target
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) and \
                        not isinstance(e, FileExistsError):
                    raise
                version += 1
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
