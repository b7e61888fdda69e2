"""Where `score`'s rows go: one writer per format, streamed into a temporary file beside
--out that is renamed over it only when the whole run succeeded.

A new format is one class here with `row`, `error_row` and `close(keep)` (taking the open
temporary file: text, or bytes when its `binary` is set), and one entry in FORMATS.
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
    binary = False

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

    def close(self, keep: bool = True):
        pass


class JsonlRows:
    binary = False

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

    def close(self, keep: bool = True):
        pass


# Parquet: the same rows, typed; the three best classes are one list column.
PARQUET_COLUMNS = (*COLUMNS[:4], "top3", *COLUMNS[-2:])


class ParquetRows:
    """Rows gathered into row groups of ROW_GROUP rows, written through pyarrow."""

    binary = True
    ROW_GROUP = 65_536

    def __init__(self, file: IO[bytes]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        top = pa.struct([("class_name", pa.string()), ("prob", pa.float32())])
        self.schema = pa.schema(
            [
                ("path", pa.string()),
                ("label", pa.int64()),
                ("class_name", pa.string()),
                ("confidence", pa.float32()),
                ("top3", pa.list_(top)),
                ("error", pa.string()),
                ("uncertain", pa.bool_()),
            ]
        )
        self.writer = pq.ParquetWriter(file, self.schema)
        self.columns: dict[str, list] = {name: [] for name in PARQUET_COLUMNS}

    def row(self, path, names, top, probs, uncertain):
        c = self.columns
        c["path"].append(utf8(path))
        c["label"].append(top[0])
        c["class_name"].append(names[top[0]])
        c["confidence"].append(probs[0])
        c["top3"].append([{"class_name": names[k], "prob": p} for k, p in zip(top, probs)])
        c["error"].append(None)
        c["uncertain"].append(bool(uncertain))
        self._flush_when_full()

    def error_row(self, path, error):
        for name, values in self.columns.items():
            values.append(None)
        self.columns["path"][-1] = utf8(path)
        self.columns["error"][-1] = utf8(error)
        self._flush_when_full()

    def _flush_when_full(self):
        if len(self.columns["path"]) >= self.ROW_GROUP:
            self._flush()

    def _flush(self):
        if self.columns["path"]:
            self.writer.write_table(self.pa.table(self.columns, schema=self.schema))
            for values in self.columns.values():
                values.clear()

    def close(self, keep: bool = True):
        """Write what is gathered (unless the file is being discarded) and the footer,
        without which it is no Parquet file."""
        if keep:
            self._flush()
        self.writer.close()


def utf8(text: str) -> str:
    """`text` as valid UTF-8: undecodable bytes of a file name (surrogates) become \\udcXX
    escapes, as the text formats write them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


FORMATS = {".csv": CsvRows, ".jsonl": JsonlRows, ".parquet": ParquetRows}
EXTENSIONS = ", ".join(list(FORMATS)[:-1]) + " or " + list(FORMATS)[-1]


class Output:
    """Creating it is the writability check: the temporary file exists before any
    scoring starts. `commit` renames it over --out; `discard` removes it, so a failed
    or interrupted run leaves any previous file at --out untouched."""

    def __init__(self, path: Path):
        self.path = path
        writer = FORMATS.get(path.suffix.lower())
        if writer is None:
            raise ScoreError(f"--out {path}: unknown extension '{path.suffix}'; use {EXTENSIONS}")
        self.format = path.suffix.lower().lstrip(".")
        if path.is_dir():
            raise ScoreError(f"--out {path}: is a directory; name a {EXTENSIONS} file")
        if not path.parent.is_dir():
            raise ScoreError(f"--out {path}: directory {path.parent} does not exist")
        # Undecodable bytes in file names (surrogates) are written as \udcXX escapes.
        self._file = (
            files.atomic_file(path, "wb", buffering=1 << 20)
            if writer.binary
            else files.atomic_file(
                path,
                "w",
                encoding="utf-8",
                errors="backslashreplace",
                newline="",
                buffering=1 << 20,
            )
        )
        try:
            file = self._file.__enter__()
        except OSError as e:
            raise ScoreError(
                f"--out {path}: cannot write in {path.parent} ({e.strerror})"
            ) from None
        self.rows = self.failed = 0  # rows written, error rows among them
        self.first_errors: list[tuple[str, str]] = []  # a few, for the summary
        self.writer = None
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
                    self.failed += 1
                    if len(self.first_errors) < 3:
                        self.first_errors.append((path, error))
        except OSError as e:
            raise RunError(f"--out {self.path}: writing failed ({e.strerror})") from None
        self.rows += len(paths)
        return np.asarray([t[0] for t in top], dtype=np.int64)

    def commit(self) -> None:
        """Flush, fsync and rename over --out (files.atomic_file's guarantee)."""
        try:
            self.writer.close()
        except OSError as e:
            raise RunError(f"--out {self.path}: writing failed ({e.strerror})") from None
        try:
            self._file.__exit__(None, None, None)
        except OSError as e:  # the temporary file is gone already
            raise RunError(f"--out {self.path}: cannot finish writing ({e.strerror})") from None

    def discard(self) -> None:
        """Remove the temporary file; --out stays as it was."""
        error = RuntimeError("discarded")
        try:
            if self.writer is not None:
                self.writer.close(keep=False)
        except (OSError, ValueError):  # a full disk, a file gone: it is being removed anyway
            pass
        try:
            self._file.__exit__(type(error), error, None)
        except (RuntimeError, OSError):
            pass
