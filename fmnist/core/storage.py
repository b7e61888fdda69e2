"""Locations: a path on disk, or an object in a bucket (s3://), behind one pathlib API.

A location given on the command line is parsed here once: a plain path is a
pathlib.Path, an s3:// URI a universal_pathlib UPath over fsspec's S3 filesystem (s3fs),
so that reading (read_text, iterdir, is_file, stat) is one code path for both.
Credentials and the endpoint come from botocore's standard chain: the AWS_* environment
variables, ~/.aws/config and credentials, a pod's web identity or instance role, and
AWS_ENDPOINT_URL for an S3-compatible store (MinIO, Ceph, R2).

Writing differs, because an object store has no rename and no lock:
- one PUT is atomic (a reader sees the old object or the new one), so `write_bytes`
  writes a small file directly there, and aside-then-rename on disk;
- `create` is S3's conditional write If-None-Match (fails if the object exists) and
  `replace` its If-Match (fails if the object changed since it was read): what version
  numbers, the models lock and a study's journal are built on (fmnist/core/export.py,
  `lease` below, fmnist/training/bucket_journal.py); `check_conditional` proves a store
  honours them;
- a directory of objects is never atomic: a reader must wait for its commit object,
  written last (docs/design.md, "Object storage").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from fmnist.core.files import atomic_file, json_bytes

# The schemes fmnist-job reads and writes. Others fsspec knows (gs://, az://) lack the
# conditional writes `create` and `replace` need through one tested API: refused.
SCHEMES = ("s3",)
# Anything that starts like a URI ("s3:/x" included) is a URI, never a local folder.
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/")
# A wrong endpoint or a dead network is reported in seconds (the README promises
# 10), not after botocore's default of 60 s per attempt times retries.
_S3_OPTIONS = {
    "use_listings_cache": False,  # another process's writes are seen at once
    "config_kwargs": {
        "connect_timeout": 3,
        "read_timeout": 20,
        "retries": {"max_attempts": 2, "mode": "standard"},
    },
}


class LocationError(ValueError):
    """A location that cannot be used: a one-line message naming it and what to do."""


def location(text: str | os.PathLike, option: str) -> Path:
    """What the command line's `text` names: a Path, or a UPath for an s3:// URI.

    Args:
        text: the option's value.
        option: the option's name, for the message ("--export-dir").

    Raises:
        LocationError: a URI of a scheme fmnist-job does not support, or one with no
            bucket.
    """
    text = os.fspath(text)
    match = _URI.match(text)
    if not match:
        return Path(text)
    scheme = match.group(1).lower()
    if scheme == "file":
        return Path(text[len("file://") :] if text.startswith("file://") else text[5:])
    if scheme not in SCHEMES:
        raise LocationError(
            f"{option} {text}: fmnist-job reads and writes local paths and s3:// URIs "
            f"(S3, or an S3-compatible store through AWS_ENDPOINT_URL); "
            f"{scheme}:// is not supported"
        )
    if not text.lower().startswith(f"{scheme}://") or not urlsplit(text).netloc:
        raise LocationError(f"{option} {text}: not a bucket's URI; write {scheme}://BUCKET/PATH")
    from upath import UPath

    path = UPath(f"{scheme}://" + text[len(scheme) + 3 :].rstrip("/"), **_S3_OPTIONS)
    return path


def is_uri(text: str) -> bool:
    """Whether `text` is written as a URI (a bucket's, as storage.uri gives it)."""
    return bool(_URI.match(text))


def is_remote(path) -> bool:
    """Whether `path` is in a bucket (a UPath), not on a local disk."""
    return not isinstance(path, Path)


def as_location(path):
    """`path` as a location: a bucket's UPath stays one, anything else becomes a Path."""
    return path if is_remote(path) else Path(path)


def bucket_of(path) -> str:
    return path.path.split("/", 1)[0] if is_remote(path) else ""


def uri(path) -> str:
    """The location as a user writes it: 's3://bucket/key', or an absolute path."""
    return str(path) if is_remote(path) else str(Path(path).resolve())


def inside(directory, path) -> bool:
    """Whether `path` is `directory` or under it (in the same store)."""
    if is_remote(directory) != is_remote(path):
        return False
    if is_remote(path):
        top = str(directory).rstrip("/") + "/"
        return str(path).rstrip("/") + "/" == top or str(path).startswith(top)
    directory = Path(directory).resolve()
    return directory in (Path(path).resolve(), *Path(path).resolve().parents)


def check(path, option: str, *, write: bool = False) -> None:
    """Prove `path` can be used before any work starts: its bucket exists and answers
    with these credentials, and (`write`) an object can be made in it. Local paths are
    left to the callers' own checks.

    Raises:
        LocationError: one line naming the URI and what to do.
    """
    if not is_remote(path):
        return
    try:
        path.fs.ls(bucket_of(path), detail=False)
        if write:
            probe = path / f".fmnist-write-check-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
    except Exception as e:  # noqa: BLE001 (botocore's and s3fs's errors are many; named below)
        raise LocationError(f"{option} {path}: {explain(e, bucket_of(path))}") from None


def explain(error: BaseException, bucket: str = "") -> str:
    """What went wrong with a bucket, in words a user can act on."""
    name = type(error).__name__
    text = str(error)
    code = _error_code(error)
    if name == "NoCredentialsError" or "Unable to locate credentials" in text:
        return (
            "no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE, or run where an instance or pod role provides them"
        )
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError") or (
        isinstance(error, (ConnectionError, socket.gaierror, TimeoutError))
    ):
        where = _endpoint("S3's endpoint")
        return f"cannot connect to {where}; check the URL and the network"
    if code == "NoSuchBucket":
        return f"no bucket named {bucket!r}; create it, or fix the URI"
    if code in ("404", "403", "400", "405") or (isinstance(error, FileNotFoundError) and not code):
        # An HTTP answer without S3's error document: something else listens there.
        where = _endpoint("the endpoint")
        return (
            f"{where} answered HTTP {code or 'Not Found'} without an S3 error; is it an S3 service?"
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
        return f"the credentials were refused ({code}); check AWS_ACCESS_KEY_ID and the secret"
    if code in ("AccessDenied", "AllAccessDisabled") or isinstance(error, PermissionError):
        return "access denied; the credentials lack permission for this bucket or key"
    return f"{name}: {_first_line(text)}"


def _endpoint(default: str) -> str:
    """The endpoint as the user set it, for a message; `default` when none is set."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    return f"the endpoint {endpoint} (AWS_ENDPOINT_URL)" if endpoint else default


def _error_code(error: BaseException) -> str:
    """botocore's error code ("NoSuchBucket"), found on the error or what caused it."""
    seen = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        seen = seen.__cause__ or seen.__context__
    return ""


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


# -----------------------------------------------------------------------------
# Writing


def write_bytes(path, data: bytes) -> None:
    """A small file written whole: aside and renamed on disk, one PUT in a bucket."""
    if is_remote(path):
        path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as f:
        f.write(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    """JSON as files.write_json_atomic writes it, written whole (write_bytes)."""
    write_bytes(path, json_bytes(obj))


class Changed(Exception):
    """A conditional write lost: the object exists (create) or changed (replace)."""


def create(path, data: bytes) -> None:
    """Write an object only if nothing is there (S3's If-None-Match).

    Raises:
        Changed: something already is.
    """
    try:
        path.fs.pipe_file(path.path, data, mode="create")
    except FileExistsError:
        raise Changed(str(path)) from None
    except OSError as e:
        if _error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise Changed(str(path)) from None
        raise


def read_tagged(path) -> tuple[bytes, str]:
    """An object's bytes and its ETag, for a `replace` that fails if it changed since.

    Raises:
        FileNotFoundError: there is none.
    """
    info = path.fs.info(path.path)
    data = path.fs.cat_file(path.path)
    if path.fs.info(path.path)["ETag"] != info["ETag"]:  # written between the two calls
        return read_tagged(path)
    return data, info["ETag"]


def check_conditional(path, option: str, needed_by: str) -> None:
    """Prove the store under `path` honours If-None-Match: a probe object made with
    `create`, then made again, must be refused (a store that ignores the condition
    overwrites it), then deleted. Three requests.

    Args:
        path: a bucket's location (a local path is left alone).
        option: the option that named it, for the message ("--runs-dir").
        needed_by: what relies on the condition, for the message ("a [[study]]").

    Raises:
        LocationError: one line naming the location and what to do.
    """
    if not is_remote(path):
        return
    probe = path / f".fmnist-condition-check-{uuid.uuid4().hex}"
    try:
        create(probe, b"")
        try:
            create(probe, b"again")
        except Changed:
            return
        raise LocationError(
            f"{option} {path}: the store ignored S3's conditional write (If-None-Match), "
            f"which {needed_by} needs; use a store that honours it (AWS S3, MinIO, R2) "
            f"or a local {option}"
        )
    finally:
        with contextlib.suppress(Exception):
            probe.fs.rm_file(probe.path)


def read_many(paths: list) -> list[bytes]:
    """The bytes of many objects of one bucket, fetched concurrently (s3fs), in order.

    Raises:
        FileNotFoundError: one of them is not there.
    """
    if not paths:
        return []
    fs = paths[0].fs
    found = fs.cat([p.path for p in paths])
    return [found[p.path] for p in paths]


def replace(path, data: bytes, etag: str) -> None:
    """Overwrite an object only if its ETag is still `etag` (S3's If-Match).

    Raises:
        Changed: it changed (or went) since it was read.
    """
    try:
        path.fs.pipe_file(path.path, data, IfMatch=etag)
    except FileNotFoundError:
        raise Changed(str(path)) from None
    except OSError as e:
        if _error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
            raise Changed(str(path)) from None
        raise


def upload_tree(local: Path, remote, last: str | None = None) -> None:
    """Every file under `local` to the same relative keys under `remote`, `last` (a
    relative name: the commit object) after all the others."""
    names = sorted(p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file())
    first = [name for name in names if name != last]
    if first:  # one call for all: s3fs uploads them concurrently
        remote.fs.put([str(local / n) for n in first], [(remote / n).path for n in first])
    if last in names:  # then the commit object, alone
        remote.fs.put_file(str(local / last), (remote / last).path)


def download_tree(remote, local: Path) -> Path:
    """Every object under `remote` into `local` (created), keeping the relative keys."""
    local = Path(local)
    local.mkdir(parents=True, exist_ok=True)
    prefix = remote.path.rstrip("/") + "/"
    keys = [k for k in remote.fs.find(remote.path) if k.startswith(prefix)]
    targets = [local / k[len(prefix) :] for k in keys]
    for target in {t.parent for t in targets}:
        target.mkdir(parents=True, exist_ok=True)
    if keys:  # one call for all: s3fs fetches them concurrently
        remote.fs.get(keys, [str(t) for t in targets])
    return local


def remove_tree(path) -> None:
    """Delete a directory and all under it (in a bucket: every object with its prefix)."""
    if is_remote(path):
        with contextlib.suppress(FileNotFoundError):
            path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def local_copy(path, prefix: str = "fmnist-") -> Iterator[Path]:
    """A local directory with what `path` holds: `path` itself when it is on disk, else
    a temporary download, deleted on leaving."""
    if not is_remote(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield download_tree(path, Path(tmp) / (path.name or "copy"))


# -----------------------------------------------------------------------------
# A lock in a bucket


class Held(Exception):
    """The lease is held by someone else past the wait."""


LEASE_SECONDS = 120  # a holder that died frees the lock after this long


@contextlib.contextmanager
def lease(path, wait: float = 60.0) -> Iterator[None]:
    """Exclusive use of whatever `path` guards, across machines, in a bucket.

    The lease is an object made with If-None-Match (only one maker wins) holding its
    owner and an expiry; a lease past its expiry (its holder died) is taken over with
    If-Match on the ETag read, so two takers cannot both win. Work under it must take
    well under LEASE_SECONDS (the models commands and the gate take a few requests).

    Raises:
        Held: another holder kept it for all of `wait` seconds.
    """
    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        body = json.dumps(
            {"owner": me, "expires": time.time() + LEASE_SECONDS, "since": _now()}
        ).encode()
        try:
            create(path, body)
            break
        except Changed:
            pass
        try:
            data, etag = read_tagged(path)
            held = json.loads(data)
            if float(held["expires"]) < time.time():
                replace(path, body, etag)
                break
        except FileNotFoundError:
            continue  # released just now: try to create it again at once
        except Changed:
            pass  # another taker won the takeover
        except (ValueError, KeyError, TypeError):
            held = {"owner": "unreadable lease", "since": "?"}
        if time.monotonic() > deadline:
            raise Held(
                f"{path} is held by {held.get('owner')} since {held.get('since')}; "
                f"if no fmnist-job is running there, delete it"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if json.loads(path.fs.cat_file(path.path))["owner"] == me:
                path.fs.rm_file(path.path)


def claim_note() -> bytes:
    """What a claim or lease object says of its maker: host, process, time."""
    return json.dumps({"owner": f"{socket.gethostname()}:{os.getpid()}", "since": _now()}).encode()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
