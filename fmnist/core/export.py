"""An export in TF Serving's layout: version directories, published atomically.

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

from fmnist.core.files import default_mode, write_json_atomic

METADATA = "fmnist.json"
SIGNATURE = "serving_default"
INPUT_KEY, OUTPUT_KEY = "images", "probabilities"


def versions(base: Path) -> list[int]:
    """Integer version directories under an export base, ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def pack(directory: Path) -> bytes:
    """A SavedModel directory as one tar archive, to carry it between machines."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(directory, arcname=".")
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
