"""Which files a scoring run reads, and in which order.

One pass over the tree, sorted, without following symlinked directories; a file that
cannot be read as an image file is kept with the reason, so it becomes an error row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fmnist.scoring import images


@dataclass
class WalkStats:
    ignored: int = 0  # files whose extension is not an image format's
    linked_dirs: int = 0  # symlinked directories, never followed


def walk(root: Path, stats: WalkStats | None = None) -> Iterator[tuple[str, str | None]]:
    """(path relative to root in POSIX form, error or None) for every file with an image
    extension, in sorted order: each directory's entries sorted by name, depth first
    (the same as sorting the paths component by component).

    Symlinks: a link to a file inside the tree is scored; a link that points outside
    the tree, or nowhere, is not read and becomes an error row. Symlinked directories
    are never descended into (no loops, no escaping the tree; a link to a directory
    inside the tree would only score its files twice) and are counted."""
    stats = stats if stats is not None else WalkStats()
    real_root = os.path.realpath(root)
    stack: list[tuple[str, Iterator[os.DirEntry]]] = [("", iter(_listing(root)))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            try:
                stack.append((rel + "/", iter(_listing(entry.path))))
            except OSError as e:
                yield rel + "/", f"cannot list directory: {images.describe(e)}"
            continue
        if entry.is_symlink() and entry.is_dir():
            stats.linked_dirs += 1
            continue
        if os.path.splitext(entry.name)[1].lower() not in images.EXTENSIONS:
            stats.ignored += 1
            continue
        yield rel, _file_error(entry, real_root)


def walk_bucket(root, stats: WalkStats | None = None) -> Iterator[tuple[str, str | None]]:
    """walk() of a bucket's prefix: its objects' keys relative to `root`, in the order
    walk() gives for the same files on disk (sorted component by component). A bucket
    has no links, FIFOs or unreadable directories: every key is a file."""
    stats = stats if stats is not None else WalkStats()
    prefix = root.path.rstrip("/") + "/"
    rels = [k[len(prefix) :] for k in root.fs.find(root.path) if k.startswith(prefix)]
    for rel in sorted(rels, key=lambda r: r.split("/")):
        if os.path.splitext(rel)[1].lower() not in images.EXTENSIONS:
            stats.ignored += 1
            continue
        yield rel, None


def _listing(directory) -> list[os.DirEntry]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def _file_error(entry: os.DirEntry, real_root: str) -> str | None:
    """Why this entry cannot be read as an image file, or None. Uses the type scandir
    already knows; only symlinks cost a realpath."""
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            return "broken symlink"
        if os.path.commonpath([real_root, target]) != real_root:
            return "symlink to a file outside the scored directory (not read)"
        return None if os.path.isfile(target) else "symlink to something that is not a file"
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file (a FIFO, socket or device)"
    return None
