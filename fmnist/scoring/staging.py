"""Outputs in a bucket: local stand-ins for score's --out, --preview and --save-inputs.

They are written locally as on disk and uploaded once the run has succeeded. An object
appears whole with its one PUT, so a reader of --out sees the previous predictions or
the new ones; a run that fails uploads nothing, and an upload that fails keeps the local
file and names it. (The photos of an s3:// DIRECTORY are not staged: each decoder, or
each Ray task with --ray, fetches its chunk from the bucket; fmnist/scoring/images.py.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fmnist.core import storage
from fmnist.core.errors import RunError


class Staged:
    """`out`, `preview` and `save_inputs` as local paths for the run."""

    def __init__(self, out, preview=None, save_inputs=None):
        self._given = (out, preview, save_inputs)
        self._tmp: Path | None = None
        self._keep = False
        self._uploads: list[tuple[Path, object, str]] = []
        self.out, self.preview, self.save_inputs = out, preview, save_inputs

    def __enter__(self) -> Staged:
        if not any(storage.is_remote(p) for p in self._given if p is not None):
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="fmnist-score-"))
        self.out = self._stand_in(self.out, "--out")
        if self.preview is not None:
            self.preview = self._stand_in(self.preview, "--preview")
        if self.save_inputs is not None and storage.is_remote(self.save_inputs):
            local = self._tmp / "save-inputs"
            self._uploads.append((local, self.save_inputs, "--save-inputs"))
            self.save_inputs = local
        return self

    def _stand_in(self, path, option: str):
        if not storage.is_remote(path):
            return path
        local = self._tmp / option.lstrip("-") / path.name
        local.parent.mkdir(parents=True)
        self._uploads.append((local, path, option))
        return local

    def upload(self) -> None:
        """Put what the run wrote locally into the bucket (call after it succeeded).

        Raises:
            RunError: an upload failed (the message names the URI).
        """
        for local, remote, option in self._uploads:
            try:
                if local.is_dir():
                    storage.upload_tree(local, remote)
                elif local.exists():
                    remote.fs.put_file(str(local), remote.path)
            except Exception as e:  # noqa: BLE001 (botocore's errors are many; explain names them)
                why = storage.explain(e, storage.bucket_of(remote))
                self._keep = True  # what the run made is not thrown away with the error
                raise RunError(
                    f"{option} {remote}: upload failed ({why}); kept in {local}"
                ) from None

    def __exit__(self, *exc) -> None:
        if self._tmp is not None and not self._keep:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
