"""An export in TF Serving's layout: version directories, published atomically.

    <export-dir>/<version>/saved_model.pb, variables/, fmnist.json

On disk, the version is written under a hidden temporary name in the same directory
and renamed into place, so TF Serving, `fmnist-job score` or a concurrent sweep never
sees a half-written version. If another exporter took the version number first, the
rename fails and we take the next one.

In a bucket (s3://), where there is no rename, the number is claimed first with a
conditional write (`<export-dir>/.claims/<version>`: one claimant wins), the version's
objects are uploaded, and its fmnist.json is written last: a version without one is
not there yet for any reader here, and TF Serving loads only the versions
models.config lists, which the gate writes after the commit (docs/design.md).

fmnist.json, what travels beside the SavedModel, is written and read through one
schema: ExportMetadata.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fmnist.core import storage
from fmnist.core.files import default_mode, write_json_atomic

METADATA = "fmnist.json"
SIGNATURE = "serving_default"
INPUT_KEY, OUTPUT_KEY = "images", "probabilities"


class ExportInput(BaseModel):
    """The serving signature's input, as fmnist-job exports it."""

    signature: str = SIGNATURE
    key: str = INPUT_KEY
    dtype: str = "uint8"
    shape: list[int | None] = [None, 28, 28]
    background: int = 0  # the pixel value of an empty background (dark, as in the data)


class ExportOutput(BaseModel):
    """The serving signature's output: one probability per class."""

    key: str = OUTPUT_KEY
    shape: list[int | None] = [None, 10]


class ExportMetadata(BaseModel):
    """fmnist.json: what travels beside the SavedModel.

    Written whole by `fmnist-job train`; an export written by an older version (or by
    hand) may lack any field but is still read: a missing field is None, and a field
    that is None is left out of the file.
    `variant` is the exported variant's config; for an ensemble, its name and `members`
    (each a config with its `weight`)."""

    model_config = ConfigDict(extra="ignore")

    class_names: list[str] | None = Field(default=None, min_length=10, max_length=10)
    run_id: str | None = None
    variant: dict[str, Any] | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    dataset_sha256: dict[str, str] | None = None  # per release file
    input: ExportInput | None = None
    output: ExportOutput | None = None
    libraries: dict[str, str] | None = None
    exported_at: str | None = None  # ISO 8601, UTC
    # The temperature and ECE, and the `uncertain` flag's thresholds: written by
    # fmnist/training/calibrate.py (typed there as ops.results.CalibrationRecord's parts),
    # read by fmnist/scoring/uncertain.py. Exports made before have neither.
    calibration: dict[str, Any] | None = None
    uncertain: dict[str, Any] | None = None
    # A distilled model's teacher (kind, name, config, accuracies); it is never exported.
    teacher: dict[str, Any] | None = None

    @property
    def variant_name(self) -> str | None:
        name = (self.variant or {}).get("name")
        return name if isinstance(name, str) else None

    def dump(self) -> dict[str, Any]:
        """The JSON object fmnist.json holds."""
        return self.model_dump(mode="json", exclude_none=True)


class MetadataError(ValueError):
    """An fmnist.json that is JSON but not an export's metadata. `field` names the first
    field at fault ("" for the document itself: not a JSON object)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def read_metadata(version: Path) -> ExportMetadata:
    """The fmnist.json of a version directory.

    Raises:
        FileNotFoundError: there is none.
        OSError: it cannot be read.
        ValueError: it is not JSON (json's own error), or MetadataError: it is not an
            export's metadata.
    """
    document = json.loads((version / METADATA).read_bytes())
    try:
        return ExportMetadata.model_validate(document)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise MetadataError(
            f"not an export's metadata ({where or 'the document'}: {error['msg'].lower()})",
            str(error["loc"][0]) if error["loc"] else "",
        ) from None


def versions(base: Path) -> list[int]:
    """Integer version directories under an export base, ascending (in a bucket: those
    committed, with their fmnist.json)."""
    if storage.is_remote(base):
        found = base.fs.glob(f"{base.path}/*/{METADATA}")
        return sorted(int(k.split("/")[-2]) for k in found if k.split("/")[-2].isdigit())
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def pack(directory: Path) -> bytes:
    """A SavedModel directory as one tar archive, to carry it between machines."""
    buf = io.BytesIO()
    with storage.local_copy(directory) as local, tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(local, arcname=".")
    return buf.getvalue()


class UnsafeArchive(tarfile.TarError):
    """A member that would land outside the target directory, a link or a device."""


def checked_members(tar: tarfile.TarFile, directory: Path) -> list[tarfile.TarInfo]:
    """The members of an archive that `pack` could have made: regular files and directories
    with relative paths that stay inside `directory`. Anything else (an absolute path, a
    `..` escape, a symlink, a hard link, a device, a FIFO) raises UnsafeArchive.

    This is what the extraction filter "data" guarantees on Python >= 3.11.4; Python
    3.11.0-3.11.3 (Debian 12 ships 3.11.2) have no filters, so the check is done here."""
    root = os.path.realpath(directory)
    members = []
    for m in tar.getmembers():
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchive(f"{m.name!r}: not a regular file or directory")
        target = os.path.realpath(os.path.join(root, m.name))
        if os.path.isabs(m.name) or os.path.commonpath([root, target]) != root:
            raise UnsafeArchive(f"{m.name!r}: outside the target directory")
        if m.isfile():  # as the "data" filter: no setuid/sticky or group/other write bits
            m.mode = (m.mode & 0o755 | 0o600) & (~0o111 if not m.mode & 0o100 else 0o7777)
        else:  # directories as mkdir would make them
            m.mode = default_mode(0o777)
        m.uid, m.gid, m.uname, m.gname = os.geteuid(), os.getegid(), "", ""  # no chown
        members.append(m)
    return members


def unpack(archive: bytes, directory: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = checked_members(tar, directory)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the standard filter as well
            tar.extractall(directory, members=members, filter="data")
        else:
            tar.extractall(directory, members=members)  # noqa: S202 (members checked above)


def publish(write: Callable[[Path], None], metadata: ExportMetadata | dict, base: Path) -> Path:
    """Write a new version under `base`, then rename it into place.

    Args:
        write: fills the SavedModel into the staging directory it is given.
        metadata: fmnist.json (a plain dict is written as it is).
        base: the export directory.

    Returns:
        The new version's directory.
    """
    if storage.is_remote(base):
        return _publish_remote(write, metadata, base)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        write(staging)
        write_json_atomic(
            staging / METADATA,
            metadata.dump() if isinstance(metadata, ExportMetadata) else metadata,
        )
        os.chmod(staging, default_mode(0o777))
        return rename_into_place(staging, base)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def rename_into_place(staging: Path, base: Path) -> Path:
    """Rename a finished staging directory to the next free version number under
    `base`; returns the version's directory."""
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
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not isinstance(
                e, FileExistsError
            ):
                raise
            version += 1


CLAIMS = ".claims"


def _publish_remote(write: Callable[[Path], None], metadata: ExportMetadata | dict, base):
    """publish() into a bucket: claim the next number, upload, commit with fmnist.json."""
    document = metadata.dump() if isinstance(metadata, ExportMetadata) else metadata
    with tempfile.TemporaryDirectory(prefix="fmnist-export-") as tmp:
        staging = Path(tmp) / "version"
        staging.mkdir()
        write(staging)
        write_json_atomic(staging / METADATA, document)
        version = claim_version(base)
        target = base / str(version)
        try:
            storage.upload_tree(staging, target, last=METADATA)
        except BaseException:
            storage.remove_tree(target)  # never committed: no reader saw it
            raise
        return target


def claim_version(base) -> int:
    """The next version number under a bucket's export base, claimed with a conditional
    write so that two exporters racing never get the same one."""
    claimed = base.fs.glob(f"{base.path}/{CLAIMS}/*")
    taken = [int(k.rsplit("/", 1)[-1]) for k in claimed if k.rsplit("/", 1)[-1].isdigit()]
    version = max(taken + versions(base) + [0]) + 1
    while True:
        try:
            storage.create(base / CLAIMS / str(version), storage.claim_note())
            return version
        except storage.Changed:
            version += 1
