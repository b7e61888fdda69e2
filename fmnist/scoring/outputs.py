"""Where `score`'s rows go: one writer per format. Rows are encoded a part at a time
(committed beside --out as the run goes, fmnist/scoring/parts.py), then joined into a
temporary file beside --out that is renamed over it only when the whole run succeeded.

A new format is one class here with `row`, `error_row`, `take` (the rows since the last
take, as bytes) and `join(file, parts)` (the whole file from those bytes, in order, the
same however the rows were split), and one entry in FORMATS.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from pathlib import Path
from typing import IO, Iterable

import numpy as np

from fmnist.core import files
from fmnist.core.errors import RunError, ScoreError
from fmnist.scoring.parts import Counts, Part, Parts

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
    """Rows as CSV text, taken as UTF-8 bytes a part at a time; the file is the header,
    then every part's bytes."""

    def __init__(self):
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer, lineterminator="\n")

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

    def take(self) -> bytes:
        """The rows since the last take, encoded (undecodable bytes of a file name,
        surrogates, as \\udcXX escapes)."""
        data = self.buffer.getvalue().encode("utf-8", "backslashreplace")
        self.buffer.seek(0)
        self.buffer.truncate()
        return data

    @staticmethod
    def join(file: IO[bytes], parts: Iterable[bytes]) -> None:
        file.write((",".join(COLUMNS) + "\n").encode())
        for part in parts:
            file.write(part)


class JsonlRows(CsvRows):
    """One JSON object a line; the file is every part's bytes."""

    def __init__(self):
        self.buffer = io.StringIO()

    def row(self, path, names, top, probs, uncertain):
        (a, b, c), (pa, pb, pc) = top, (round(p, 6) for p in probs)
        self.buffer.write(
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
        self.buffer.write(json.dumps(row, ensure_ascii=False) + "\n")

    @staticmethod
    def join(file: IO[bytes], parts: Iterable[bytes]) -> None:
        for part in parts:
            file.write(part)


# Parquet: the same rows, typed; the three best classes are one list column.
PARQUET_COLUMNS = (*COLUMNS[:4], "top3", *COLUMNS[-2:])


def parquet_schema():
    import pyarrow as pa

    top = pa.struct([("class_name", pa.string()), ("prob", pa.float32())])
    return pa.schema(
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


class ParquetRows:
    """Rows gathered in columns, taken as an Arrow IPC stream a part at a time; the file
    is written through pyarrow in row groups of ROW_GROUP rows, cut from the rows in
    order wherever the parts began (the same bytes however the run was split)."""

    ROW_GROUP = 65_536

    def __init__(self):
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

    def error_row(self, path, error):
        for name, values in self.columns.items():
            values.append(None)
        self.columns["path"][-1] = utf8(path)
        self.columns["error"][-1] = utf8(error)

    def take(self) -> bytes:
        import pyarrow as pa

        schema = parquet_schema()
        table = pa.table(self.columns, schema=schema)
        for values in self.columns.values():
            values.clear()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as stream:
            stream.write_table(table)
        return sink.getvalue().to_pybytes()

    @classmethod
    def join(cls, file: IO[bytes], parts: Iterable[bytes]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(file, parquet_schema())
        held: list = []  # tables not yet written, fewer than ROW_GROUP rows in all
        for part in parts:
            held.append(pa.ipc.open_stream(part).read_all())
            rows = pa.concat_tables(held)
            while rows.num_rows >= cls.ROW_GROUP:
                # One chunk per group: the pages then follow the rows, not the parts.
                writer.write_table(rows.slice(0, cls.ROW_GROUP).combine_chunks())
                rows = rows.slice(cls.ROW_GROUP)
            held = [rows]
        rows = pa.concat_tables(held) if held else None
        if rows is not None and rows.num_rows:
            writer.write_table(rows.combine_chunks())
        writer.close()


def utf8(text: str) -> str:
    """`text` as valid UTF-8: undecodable bytes of a file name (surrogates) become \\udcXX
    escapes, as the text formats write them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


FORMATS = {".csv": CsvRows, ".jsonl": JsonlRows, ".parquet": ParquetRows}
EXTENSIONS = ", ".join(list(FORMATS)[:-1]) + " or " + list(FORMATS)[-1]


class Output:
    """Creating it is the writability check: the temporary file exists before any
    scoring starts. Rows are held a part at a time (fmnist/scoring/parts.py commits a
    part when it is big or old enough); `commit` joins the parts and the rows held into
    the temporary file and renames it over --out; `discard` removes it, so a failed or
    interrupted run leaves any previous file at --out untouched (and its parts)."""

    def __init__(self, path: Path, parts: Parts | None = None):
        self.path, self.parts = path, parts
        writer = FORMATS.get(path.suffix.lower())
        if writer is None:
            raise ScoreError(f"--out {path}: unknown extension '{path.suffix}'; use {EXTENSIONS}")
        self.format = path.suffix.lower().lstrip(".")
        if path.is_dir():
            raise ScoreError(f"--out {path}: is a directory; name a {EXTENSIONS} file")
        if not path.parent.is_dir():
            raise ScoreError(f"--out {path}: directory {path.parent} does not exist")
        self._file = files.atomic_file(path, "wb", buffering=1 << 20)
        try:
            self._handle = self._file.__enter__()
        except OSError as e:
            raise ScoreError(
                f"--out {path}: cannot write in {path.parent} ({e.strerror})"
            ) from None
        self.writer = writer()
        self.total = Counts()  # every row of the run, the resumed parts' too
        self.held = Counts()  # the rows not in a part yet
        self.held_since = 0.0
        self.committed: list[Part] = []  # in row order

    @property
    def rows(self) -> int:
        return self.total.rows

    @property
    def failed(self) -> int:
        return self.total.failed

    @property
    def first_errors(self) -> list[tuple[str, str]]:
        return [tuple(e) for e in self.total.first_errors]

    def resume(self, parts: list[Part]) -> None:
        """Take the rows of parts an earlier run committed (parts.Parts.resume) as the
        first rows of this one, their counts in the totals."""
        for part in parts:
            counts, _ = self.parts.read(part)
            self.total.add(counts)
        self.committed = list(parts)

    def write(
        self,
        paths: list[str],
        errors: list[str | None],
        probs: np.ndarray,
        class_names: list[str],
        uncertain: np.ndarray | None = None,
    ) -> None:
        """Rows for one batch in order; `probs` and `uncertain` (bool, all false when
        None) have a row per path without an error."""
        flags = (np.zeros(len(probs), bool) if uncertain is None else uncertain).tolist()
        top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
        top_p = np.take_along_axis(probs, top, axis=1).tolist()
        top = top.tolist()
        batch = Counts(rows=len(paths), uncertain=sum(flags))
        batch.per_class = np.bincount([t[0] for t in top], minlength=10).tolist()
        k = 0
        for path, error in zip(paths, errors):
            if error is None:
                self.writer.row(path, class_names, top[k], top_p[k], flags[k])
                k += 1
            else:
                self.writer.error_row(path, error)
                batch.failed += 1
                if len(batch.first_errors) < 3:
                    batch.first_errors.append([path, error])
        if not self.held.rows:
            self.held_since = time.monotonic()
        self.held.add(batch)
        self.total.add(batch)
        if self.parts and (
            self.held.rows >= self.parts.rows
            or time.monotonic() - self.held_since >= self.parts.seconds
        ):
            self._commit_part()

    def _commit_part(self) -> None:
        first = self.total.rows - self.held.rows
        try:
            self.committed.append(self.parts.commit(first, self.held, self.writer.take()))
        except OSError as e:
            raise RunError(
                f"--out {self.path}: writing a part in {self.parts.dir} failed ({e.strerror or e})"
            ) from None
        self.held = Counts()

    def commit(self) -> None:
        """Join the parts and the rows held, flush, fsync and rename over --out
        (files.atomic_file's guarantee). The parts stay: Parts.remove, once --out is
        where it belongs."""
        held = self.writer.take()
        # One part in memory at a time.
        rows = itertools.chain((self.parts.read(part)[1] for part in self.committed), [held])
        try:
            self.writer.join(self._handle, rows)
        except OSError as e:
            raise RunError(f"--out {self.path}: writing failed ({e.strerror})") from None
        try:
            self._file.__exit__(None, None, None)
        except OSError as e:  # the temporary file is gone already
            raise RunError(f"--out {self.path}: cannot finish writing ({e.strerror})") from None

    def discard(self) -> None:
        """Remove the temporary file; --out stays as it was, the parts committed too."""
        error = RuntimeError("discarded")
        try:
            self._file.__exit__(type(error), error, None)
        except (RuntimeError, OSError):
            pass
