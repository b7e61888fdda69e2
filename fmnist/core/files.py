"""Writing files so that nobody ever reads half of one.

Every output (results.json, exports' metadata, predictions' previews) is written to a
temporary file beside its target, flushed to disk, then renamed over the target: a
reader sees the old file or the new one, and a crash leaves only a hidden temporary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


def default_mode(mode: int) -> int:
    """`mode` under the process's umask: what open() or mkdir() would have given, where
    mkstemp/mkdtemp give 0600/0700 (a model server running as another user could not
    read the files)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return mode & ~umask


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file name beside `path`, for writers that want a name (Keras, h5py);
    on leaving the block without an error the file is fsynced, given the umask's
    permissions and renamed over `path`; on an error it is removed and `path` is left
    as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)  # fsync through any descriptor flushes the file
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, default_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb", **open_args) -> Iterator[IO]:
    """atomic_path's guarantee, for a writer that takes an open file."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_args) as f:
        yield f


def json_bytes(obj) -> bytes:
    """The JSON every record is written as: indented, newline-terminated, UTF-8."""
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


def write_json_atomic(path: Path, obj) -> None:
    """JSON (json_bytes) written aside and renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as f:
        f.write(json_bytes(obj))


def missing_parents(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet, deepest first: what
    check_writable would create, for remove_empty to take back."""
    missing, path = [], Path(directory).absolute()
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_empty(directories: list[Path]) -> None:
    """Remove each of `directories` (deepest first) that is empty; keep any that is not."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def check_writable(directory: Path) -> None:
    """Create `directory` if needed and prove a file can be made in it (raises OSError).
    Tried rather than asked (os.access): one real write answers for permissions, a
    read-only mount and a file in the path alike, for root too."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
        pass


def _namespace() -> str | None:
    """This process's PID namespace (Linux), so that a PID is only judged dead by a
    process that could see it alive: containers sharing a /tmp have their own."""
    try:
        return os.readlink("/proc/self/ns/pid").split("[")[1].rstrip("]")
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary directory named for its process (`<prefix><namespace>-<pid>-…`), after
    removing those a killed process of this PID namespace left: a process killed with
    SIGKILL never runs its own clean-up, and a node's /tmp would fill night after night.

    Args:
        prefix: the kind of scratch, e.g. "fmnist-task-"; only directories of this
            prefix are swept.

    Returns:
        A tempfile.TemporaryDirectory (clean it up as any other).
    """
    namespace = _namespace()
    if namespace is None:
        return tempfile.TemporaryDirectory(prefix=prefix)
    base = Path(tempfile.gettempdir())
    for path in base.glob(f"{prefix}{namespace}-*-*"):
        pid = path.name[len(prefix) + len(namespace) + 1 :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{namespace}-{os.getpid()}-")
