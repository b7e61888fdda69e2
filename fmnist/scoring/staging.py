"""Scoring a bucket: local stand-ins for score's locations in object storage.

The photos under an s3:// DIRECTORY are downloaded into a temporary directory first, with
their relative paths (the rows' `path` column is relative to DIRECTORY, so the rows are
those a local copy gives), except with --ray, whose decoding tasks read them from the
bucket on whichever node they run (fmnist/scoring/images.py); --out, --preview and --save-inputs in a bucket are written
locally as on disk and uploaded once the run has succeeded. An object appears whole with
its one PUT, so a reader of --out sees the previous predictions or the new ones; a run
that fails uploads nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fmnist.core import storage
from fmnist.core.errors import RunError, ScoreError


class Staged:
    """`directory`, `out`, `preview` and `save_inputs` as local paths for the run; the
    given ones (`given`) for what it prints."""

    def __init__(self, directory, out, preview=None, save_inputs=None, download=True):
        self.given = {"directory": directory, "out": out, "preview": preview}
        self.given["save_inputs"] = save_inputs
        self._tmp: Path | None = None
        self._keep = False
        self._download_inputs = download
        self._uploads: list[tuple[Path, object, str]] = []
        self.directory, self.out = directory, out
        self.preview, self.save_inputs = preview, save_inputs

    def __enter__(self) -> Staged:
        if not any(storage.is_remote(p) for p in self.given.values() if p is not None):
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="fmnist-score-"))
        try:
            if storage.is_remote(self.directory) and self._download_inputs:
                self.directory = self._download(self.directory)
            self.out = self._stand_in(self.out, "--out")
            if self.preview is not None:
                self.preview = self._stand_in(self.preview, "--preview")
            if self.save_inputs is not None and storage.is_remote(self.save_inputs):
                local = self._tmp / "save-inputs"
                self._uploads.append((local, self.save_inputs, "--save-inputs"))
                self.save_inputs = local
        except BaseException:
            self.__exit__()
            raise
        return self

    def _download(self, directory) -> Path:
        local = self._tmp / "in" / (directory.name or "photos")
        try:
            # A prefix with no objects is an empty inbox (a bucket has no empty
            # directories): scored as one, header only (check_inputs).
            return storage.download_tree(directory, local)
        except Exception as e:  # noqa: BLE001 (botocore's errors are many; explain names them)
            raise ScoreError(
                f"{directory}: cannot read it ({storage.explain(e, storage.bucket_of(directory))})"
            ) from None

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
