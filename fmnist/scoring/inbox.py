"""After an hourly scoring run: move what it scored out of the inbox.

`fmnist-job score INBOX --out P --done DONE` moves every file that P records (scored, or
failed with its error: either way the file has its row) from INBOX to DONE/<P's name
without extension>/, keeping its relative path. The next run then scores only what
arrived since; a file that arrives while a run scores is not in P and stays. Moving is
a rename on the same volume: a file is in the inbox or in done/, never half in both.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path


def recorded_paths(predictions: Path) -> list[str]:
    """The relative paths a predictions file (.csv or .jsonl) has rows for."""
    with predictions.open(encoding="utf-8", newline="") as f:
        if predictions.suffix.lower() == ".csv":
            return [row["path"] for row in csv.DictReader(f)]
        return [json.loads(line)["path"] for line in f if line.strip()]


def archive(predictions: Path, inbox: Path, done: Path) -> tuple[int, int]:
    """(moved, left): files moved to done/, and rows whose file could not be (gone
    already, a name the output had to escape, a directory that could not be listed)."""
    target = done / predictions.with_suffix("").name
    moved = left = 0
    for rel in recorded_paths(predictions):
        source = inbox / rel
        if rel.endswith("/") or not source.is_file():
            left += 1
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, dest)  # same volume: atomic
            moved += 1
        except OSError:
            left += 1
    return moved, left
