"""The exported versions as an operator sees them: labels, history, promotion, rollback,
pruning, the listing, and which version `score` uses.

Labels live in `<export-dir>/models.config`, TF Serving's model config
(fmnist/ops/serving_config.py). Beside it, `models.history.json` keeps the stable versions
in the order they were made stable: `rollback` pops it (TF Serving's config has no room
for history).

Every change happens under an exclusive lock on `<export-dir>/.models.lock` (fcntl.flock:
held by an open file, released by the kernel when the process dies, so a killed process
never leaves a stale lock) and is written aside and renamed into place (files.atomic_file):
a reader sees the old config or the new one. The quality gate (fmnist/ops/gate.py) labels
under the same lock. In a bucket (s3://) the lock is a lease object made with a
conditional write (storage.lease) and each file is one PUT, atomic as it is.

No TensorFlow, no Ray: `models` commands answer in about the time Typer takes to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from fmnist.core import export, storage
from fmnist.ops.serving_config import (
    CANDIDATE,
    CONFIG,
    STABLE,
    Config,
    VersionsError,
    new_config,
    read_config,
    write_config,
)

HISTORY = "models.history.json"
LOCK = ".models.lock"


# -----------------------------------------------------------------------------
# The export directory


def disk_versions(base: Path) -> list[int]:
    """Finished versions on disk (integer dirs with a saved_model.pb), ascending."""
    return [v for v in export.versions(base) if (base / str(v) / "saved_model.pb").is_file()]


def read_history(base: Path) -> list[int]:
    """The stable versions in the order they were made stable, oldest first.

    Raises:
        VersionsError: models.history.json is there but unreadable.
    """
    try:
        saved = json.loads((base / HISTORY).read_text())
        return [int(e["version"]) for e in saved["stable"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VersionsError(
            f"{base / HISTORY}: unreadable ({e}); fix it, or delete it "
            f"(rollback then has no earlier stable versions to return to)"
        )


def write_state(
    base: Path, config: Config, history: list[int] | None = None, reason: str = ""
) -> None:
    """Write the history (when given) and the config; call it under `locked(base)`.

    History first, config last: the config is what counts, and a crash between the
    two leaves a history whose top is the next stable (read_state copes).

    Args:
        base: the export directory.
        config: the new models.config.
        history: the new list of stable versions, or None to leave it as it is.
        reason: why a version new in `history` became stable (kept in the file).
    """
    if history is not None:
        old = _history_entries(base)
        entries = []
        for i, version in enumerate(history):  # keep the when/why of entries kept
            entries.append(
                old[i]
                if i < len(old) and old[i]["version"] == version
                else {"version": version, "since": _now(), "why": reason}
            )
        events = _history_events(base)
        was = old[-1]["version"] if old else None
        if history and history[-1] != was:  # `models history`: who changed stable, when
            events.append(
                {"at": _now(), "stable": history[-1], "was": was, "why": reason, "by": _who()}
            )
        storage.write_json(base / HISTORY, {"stable": entries, "events": events})
    write_config(base, config)


def _history_events(base: Path) -> list[dict]:
    try:
        events = json.loads((base / HISTORY).read_text()).get("events", [])
        return events if isinstance(events, list) else []
    except (OSError, ValueError, AttributeError):
        return []


def _who() -> str:
    """user@host of this process (a container's uid may have no name)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def history_events(base: Path) -> list[dict]:
    """Every change of `stable`, oldest first: at, stable, was, why, by. A history written
    before events were kept gives its stable entries instead (no `was`, no `by`).

    Raises:
        VersionsError: models.history.json is there but unreadable.
    """
    read_history(base)  # the one error message for an unreadable file
    events = _history_events(base)
    if events:
        return events
    return [
        {"at": e.get("since"), "stable": e["version"], "was": None, "why": e.get("why"), "by": None}
        for e in _history_entries(base)
    ]


def history_table(rows: list[dict]) -> str:
    from fmnist.core.tables import aligned

    return aligned(
        ["when (UTC)", "stable", "was", "why", "by"],
        [
            [
                (r.get("at") or "-")[:19].replace("T", " "),
                str(r.get("stable")),
                "-" if r.get("was") is None else str(r["was"]),
                r.get("why") or "-",
                r.get("by") or "-",
            ]
            for r in rows
        ],
    )


def _history_entries(base: Path) -> list[dict]:
    try:
        return json.loads((base / HISTORY).read_text())["stable"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(base: Path) -> Iterator[None]:
    """Exclusive across processes and machines sharing the volume (flock over NFS is a
    POSIX lock on Linux clients), released when the process ends however it ends; in a
    bucket, a lease (storage.lease) that expires if its holder dies."""
    if storage.is_remote(base):
        try:
            with storage.lease(base / LOCK):
                yield
        except storage.Held as e:
            raise VersionsError(str(e)) from None
        return
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_state(base: Path) -> tuple[Config, list[int]]:
    """The config (a new one when there is none) and the stable history, the current
    stable last; call it under `locked(base)`."""
    config = read_config(base) or new_config(base)
    history = read_history(base)
    if config.stable is not None and (not history or history[-1] != config.stable):
        history.append(config.stable)  # made stable by hand, or a crash before the config
    return config, history


def _check_base(base: Path) -> list[int]:
    if not base.is_dir():
        raise VersionsError(
            f"{base}: no such export directory; pass the --export-dir "
            f"fmnist-job train exported into"
        )
    found = disk_versions(base)
    if not found:
        raise VersionsError(
            f"{base}: no exported versions in it; train first "
            f"(fmnist-job train --export-dir {base})"
        )
    return found


# -----------------------------------------------------------------------------
# Which version `score` uses


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The version `score` uses and why, found once and carried to what score prints."""

    path: Path  # the version directory
    version: int | None  # its number (None: a directory not named by one)
    labels: tuple[str, ...] = ()  # every label pointing at it, sorted
    newest: bool = False  # no version is stable and this is the newest

    @property
    def why(self) -> str:
        """'stable', 'candidate', 'canary, stable', 'newest; no stable label' or ''."""
        if self.labels:
            return ", ".join(self.labels)
        return "newest; no stable label" if self.newest else ""


def _resolved(path: Path, version: int | None, config: Config | None, found: list[int]) -> Resolved:
    labels = tuple(sorted(k for k, v in (config.labels if config else {}).items() if v == version))
    newest = (config is None or config.stable is None) and bool(found) and version == found[-1]
    return Resolved(path, version, labels, newest)


def resolve(base: Path) -> Resolved:
    """The version `score` and TF Serving use: `stable` when the config has it, else
    the newest version on disk.

    Raises:
        VersionsError: no such directory, no versions, an unreadable config, or a
            stable version that is not on disk.
    """
    found = _check_base(base)
    config = read_config(base)
    if config and config.stable is not None:
        if config.stable not in found:
            raise VersionsError(
                f"{base / CONFIG}: stable is version {config.stable}, which "
                f"is not on disk; promote an existing one "
                f"(fmnist-job models promote N)"
            )
        return _resolved(base / str(config.stable), config.stable, config, found)
    return _resolved(base / str(found[-1]), found[-1], config, found)


def used_version(version_dir: Path) -> Resolved:
    """A version directory named explicitly (`score --model base/3`), with its labels
    from the config beside it. Never raises: a config that cannot be read gives none."""
    try:
        number = int(version_dir.name)
    except ValueError:
        return Resolved(version_dir, None)
    try:
        config = read_config(version_dir.parent)
    except VersionsError:
        return Resolved(version_dir, number)
    return _resolved(version_dir, number, config, disk_versions(version_dir.parent))


# -----------------------------------------------------------------------------
# What the `models` commands do


def size_of(path: Path) -> int:
    if storage.is_remote(path):
        return int(path.fs.du(path.path))
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def listing(base: Path) -> list[dict]:
    """One row per version on disk, ascending (what `models list` prints)."""
    found = _check_base(base)
    config = read_config(base) or new_config(base)
    by_version: dict[int, list[str]] = {}
    for label, version in config.labels.items():
        by_version.setdefault(version, []).append(label)
    rows = []
    for version in found:
        try:
            meta = export.read_metadata(base / str(version))
        except (OSError, export.MetadataError):
            meta = export.ExportMetadata()  # a row without the export's own figures
        rows.append(
            {
                "version": version,
                "created": meta.exported_at,
                "variant": meta.variant_name,
                "val_accuracy": meta.val_accuracy,
                "test_accuracy": meta.test_accuracy,
                "run_id": meta.run_id,
                "labels": sorted(by_version.get(version, [])),
                "served": version in config.versions,
                "size_bytes": size_of(base / str(version)),
            }
        )
    return rows


def promote(base: Path, version: int, reason: str = "promote") -> tuple[int | None, int]:
    """Label `version` stable; returns (previous stable, version)."""
    found = _check_base(base)
    if version not in found:
        raise VersionsError(
            f"version {version} is not in {base} (versions: "
            f"{', '.join(map(str, found))}); see fmnist-job models list"
        )
    with locked(base):
        config, history = read_state(base)
        before = config.stable
        if before == version:
            return before, version
        config.labels[STABLE] = version
        if config.labels.get(CANDIDATE) == version:
            del config.labels[CANDIDATE]  # it is no longer a candidate: it won
        config.versions = sorted(set(config.versions) | {version})
        write_state(base, config, history + [version], reason)
        return before, version


def rollback(base: Path) -> tuple[int, int]:
    """Back to the stable before the current one; returns (from, to)."""
    found = _check_base(base)
    with locked(base):
        config, history = read_state(base)
        if config.stable is None:
            raise VersionsError(
                f"{base}: no version is labelled stable; nothing to roll "
                f"back (fmnist-job models promote N sets one)"
            )
        current = config.stable
        stack = history[:-1]
        while stack and (stack[-1] not in found or stack[-1] == current):
            stack.pop()  # pruned by hand, or the same version twice in a row
        if not stack:
            raise VersionsError(
                f"{base}: version {current} is the first stable version; "
                f"there is none before it to roll back to"
            )
        target = stack[-1]
        config.labels[STABLE] = target
        config.versions = sorted(set(config.versions) | {target})
        write_state(base, config, stack, "rollback")
        return current, target


def rollback_target(base: Path, config: Config, history: list[int]) -> int | None:
    """The version `rollback` would return to, or None."""
    found = disk_versions(base)
    stack = [v for v in history[:-1] if v in found and v != config.stable]
    return stack[-1] if stack else None


def prune(base: Path, keep: int) -> list[int]:
    """Delete all but the `keep` newest versions, never a labelled one nor the version
    rollback would go back to. Returns the versions removed.

    The config stops listing them first (TF Serving unloads them), then each directory
    is renamed to a hidden name and deleted: nobody loads a half-deleted version."""
    found = _check_base(base)
    with locked(base):
        config, history = read_state(base)
        protected = set(found[-keep:] if keep else []) | set(config.labels.values())
        target = rollback_target(base, config, history)
        if target is not None:
            protected.add(target)
        doomed = [v for v in found if v not in protected]
        if not doomed:
            return []
        if config.versions or config.labels:
            config.versions = [v for v in config.versions if v not in doomed]
            write_state(base, config)
        for version in doomed:
            if storage.is_remote(base):  # its fmnist.json first: no longer a version
                (base / str(version) / export.METADATA).unlink(missing_ok=True)
                storage.remove_tree(base / str(version))
                continue
            hidden = base / f".pruned-{version}"
            os.rename(base / str(version), hidden)
            shutil.rmtree(hidden, ignore_errors=True)
        return doomed


def table(rows: list[dict]) -> str:
    """`models list` as a plain aligned table (times in UTC)."""
    from fmnist.core.tables import aligned, percent

    return aligned(
        ["version", "created (UTC)", "variant", "val%", "test%", "label", "served", "size"],
        [
            [
                str(r["version"]),
                (r["created"] or "-")[:19].replace("T", " "),
                r["variant"] or "-",
                percent(r["val_accuracy"]),
                percent(r["test_accuracy"]),
                ",".join(r["labels"]) or "-",
                "yes" if r["served"] else "no",
                f"{r['size_bytes'] / 1e6:.1f} MB",
            ]
            for r in rows
        ],
    )
