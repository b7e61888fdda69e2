"""After an hourly scoring run: move what it scored out of the inbox.

`fmnist-job score INBOX --out P --done DONE` moves every file that P scores (a row
without an error) from INBOX to DONE/<P's name without extension>/ (`done/run1/` for
`--out run1.csv`), keeping its relative path. A file that failed (corrupt, truncated,
not an image) stays in the inbox for the next run to try again, unless `--failed-to
FAILED` moves it to FAILED/<P's name without extension>/. The next run then scores only
what arrived since (and what failed); a file that arrives while a run scores is not in P
and stays. Moving is a rename on the same volume: a file is in the inbox or in done/,
never half in both. In a bucket it is a copy, then the delete: a run killed between the
two leaves the file in both, to be scored again by the next run, never lost.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import NamedTuple

from fmnist.core import storage


class Archived(NamedTuple):
    moved: int  # scored files moved to done/
    failed_moved: int  # failed files moved to --failed-to
    failed_kept: int  # failed files left in the inbox
    missing: int  # rows whose file could not be moved (gone, or a listing error)


def recorded(predictions: Path) -> list[tuple[str, bool]]:
    """(relative path, whether it failed) of each row of a predictions file (.csv or
    .jsonl)."""
    with predictions.open(encoding="utf-8", newline="") as f:
        if predictions.suffix.lower() == ".csv":
            return [(row["path"], bool(row["error"])) for row in csv.DictReader(f)]
        rows = [json.loads(line) for line in f if line.strip()]
    return [(row["path"], bool(row.get("error"))) for row in rows]


def target(base: Path, predictions: Path) -> Path:
    """Where a run's files go under `base`: its predictions file's name, no extension."""
    return base / predictions.with_suffix("").name


def archive(predictions: Path, inbox: Path, done: Path, failed_to: Path | None = None) -> Archived:
    """Move the files `predictions` has rows for out of `inbox` (see the module)."""
    counts = {"moved": 0, "failed_moved": 0, "failed_kept": 0, "missing": 0}
    for rel, failed in recorded(predictions):
        if failed and failed_to is None:
            counts["failed_kept"] += 1
            continue
        source = inbox / rel
        if rel.endswith("/") or not source.is_file():
            counts["missing"] += 1
            continue
        dest = target(failed_to if failed else done, predictions) / rel
        try:
            if storage.is_remote(source):
                source.fs.mv(source.path, dest.path)  # a copy, then the delete
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.rename(source, dest)  # same volume: atomic
            counts["failed_moved" if failed else "moved"] += 1
        except OSError:
            counts["missing"] += 1
    return Archived(**counts)
