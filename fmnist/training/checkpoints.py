"""A variant's checkpoints and TensorBoard files in a bucket, for a run directory there.

A task trains on local copies (Keras's BackupAndRestore and TensorFlow's summary writer
want a filesystem) and commits them to the bucket after every epoch: the checkpoint's
files under `checkpoints/<variant>/<epoch>/`, then the one-line pointer
`checkpoints/<variant>/latest` naming that epoch (one PUT: a retry sees the previous
epoch whole or this one whole, never a mix), then older epochs deleted. A retry, on any
node, starts by downloading the epoch `latest` names. TensorBoard's event files are
uploaded as they are (TensorBoard reads s3:// logdirs).
"""

from __future__ import annotations

from pathlib import Path

from fmnist.core import files, storage

LATEST = "latest"


class BucketCheckpoints:
    """Local stand-ins for a task's checkpoint and TensorBoard directories in a bucket."""

    def __init__(self, checkpoint_uri: str, tensorboard_uri: str):
        self.remote = storage.location(checkpoint_uri, "--runs-dir")
        self.remote_tensorboard = storage.location(tensorboard_uri, "--runs-dir")
        self._tmp = files.scratch_dir("fmnist-task-")  # a killed task's is swept later
        self.checkpoint_dir = Path(self._tmp.name) / "checkpoint"
        self.tensorboard_dir = Path(self._tmp.name) / "tensorboard"
        self.checkpoint_dir.mkdir()

    def restore(self) -> None:
        """The last committed epoch's files, if any, into the local checkpoint dir."""
        try:
            epoch = (self.remote / LATEST).read_text().strip()
        except FileNotFoundError:
            return
        storage.download_tree(self.remote / epoch, self.checkpoint_dir)

    def commit(self, epoch: int) -> None:
        """Upload this epoch's checkpoint and move `latest` to it (call after the epoch's
        checkpoint and scalars were written)."""
        name = f"epoch-{epoch:05d}"
        storage.upload_tree(self.checkpoint_dir, self.remote / name)
        storage.write_text(self.remote / LATEST, name + "\n")
        for key in self.remote.fs.ls(self.remote.path, detail=False):
            old = key.rstrip("/").rsplit("/", 1)[-1]
            if old.startswith("epoch-") and old != name:
                storage.remove_tree(self.remote / old)
        if self.tensorboard_dir.is_dir():
            storage.upload_tree(self.tensorboard_dir, self.remote_tensorboard)

    def close(self) -> None:
        self._tmp.cleanup()
