"""Where `score`'s rows go: one writer per format, streamed into a temporary file beside
--out that is renamed over it only when the whole run succeeded.

A new format is one class here with `header`, `row` and `error_row`, and one entry in
FORMATS.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO

import numpy as np

from fmnist.core import files
from fmnist.core.errors import RunError, ScoreError

# `uncertain` (fmnist/scoring/uncertain.py) last: readers that index columns keep working.
COLUMNS = (
    "path",
    "label",
    "class_name",
    "confidence",
    "top1_class",
    "top1_prob",
    "top2_class",
    "top2_prob",
    "top3_class",
    "top3_prob",
    "error",
    "uncertain",
)


class CsvRows:
    def __init__(self, file: IO[str]):
        self.csv = csv.writer(file, lineterminator="\n")
        self.csv.writerow(COLUMNS)

    def row(self, path, names, top, probs, uncertain):
        (a, b, c), (pa, pb, pc) = top, probs
        self.csv.writerow(
            (
                path,
                a,
                names[a],
                f"{pa:.6f}",
                names[a],
                f"{pa:.6f}",
                names[b],
                f"{pb:.6f}",
                names[c],
                f"{pc:.6f}",
                "",
                "true" if uncertain else "false",
            )
        )

    def error_row(self, path, error):
        self.csv.writerow((path, "", "", "", "", "", "", "", "", "", error, ""))


class JsonlRows:
    def __init__(self, file: IO[str]):
        self.file = file

    def row(self, path, names, top, probs, uncertain):
        (a, b, c), (pa, pb, pc) = top, (round(p, 6) for p in probs)
        self.file.write(
            json.dumps(
                dict(
                    zip(
                        COLUMNS,
                        (
                            path,
                            a,
                            names[a],
                            pa,
                            names[a],
                            pa,
                            names[b],
                            pb,
                            names[c],
                            pc,
                            None,
                            bool(uncertain),
                        ),
                    )
                ),
                ensure_ascii=False,
            )
            + "\n"
        )

    def error_row(self, path, error):
        row = dict.fromkeys(COLUMNS)
        row["path"], row["error"] = path, error
        self.file.write(json.dumps(row, ensure_ascii=False) + "\n")


FORMATS = {".csv": CsvRows, ".jsonl": JsonlRows}


class Output:
    """Creating it is the writability check: the temporary file exists before any
    scoring starts. `commit` renames it over --out; `discard` removes it, so a failed
    or interrupted run leaves any previous file at --out untouched."""

    def __init__(self, path: Path):
        self.path = path
        writer = FORMATS.get(path.suffix.lower())
        if writer is None:
            raise ScoreError(
                f"--out {path}: unknown extension '{path.suffix}'; use {' or '.join(FORMATS)}"
            )
        self.format = path.suffix.lower().lstrip(".")
        if path.is_dir():
            raise ScoreError(f"--out {path}: is a directory; name a .csv or .jsonl file")
        if not path.parent.is_dir():
            raise ScoreError(f"--out {path}: directory {path.parent} does not exist")
        # Undecodable bytes in file names (surrogates) are written as \udcXX escapes.
        self._file = files.atomic_file(
            path, "w", encoding="utf-8", errors="backslashreplace", newline="", buffering=1 << 20
        )
        try:
            file = self._file.__enter__()
        except OSError as e:
            raise ScoreError(
                f"--out {path}: cannot write in {path.parent} ({e.strerror})"
            ) from None
        self.rows = 0
        self.first_errors: list[tuple[str, str]] = []  # a few, for the summary
        try:
            self.writer = writer(file)
        except OSError as e:
            self.discard()
            raise ScoreError(f"--out {path}: cannot write ({e.strerror})") from None

    def write(
        self,
        paths: list[str],
        errors: list[str | None],
        probs: np.ndarray,
        class_names: list[str],
        uncertain: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows for one batch in order; `probs` and `uncertain` (bool, all false when
        None) have a row per path without an error. Returns the labels written."""
        flags = (np.zeros(len(probs), bool) if uncertain is None else uncertain).tolist()
        top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
        top_p = np.take_along_axis(probs, top, axis=1).tolist()
        top = top.tolist()
        k = 0
        try:
            for path, error in zip(paths, errors):
                if error is None:
                    self.writer.row(path, class_names, top[k], top_p[k], flags[k])
                    k += 1
                else:
                    self.writer.error_row(path, error)
                    if len(self.first_errors) < 3:
                        self.first_errors.append((path, error))
        except OSError as e:
            raise RunError(f"--out {self.path}: writing failed ({e.strerror})") from None
        self.rows += len(paths)
        return np.asarray([t[0] for t in top], dtype=np.int64)

    def commit(self) -> None:
        """Flush, fsync and rename over --out (files.atomic_file's guarantee)."""
        try:
            self._file.__exit__(None, None, None)
        except OSError as e:  # the temporary file is gone already
            raise RunError(f"--out {self.path}: cannot finish writing ({e.strerror})") from None

    def discard(self) -> None:
        """Remove the temporary file; --out stays as it was."""
        error = RuntimeError("discarded")
        try:
            self._file.__exit__(type(error), error, None)
        except (RuntimeError, OSError):
            pass
