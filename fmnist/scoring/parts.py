"""A long score run's rows committed in parts as it goes, so a run that dies resumes.

Beside --out (a path, or a bucket's URI) a hidden directory `.<out's name>.parts/` holds

    manifest.json         what the run is: the model and its identity, the inputs' digest,
                          the options that change rows (written before the first part)
    <first>-<rows>.part   rows first .. first+rows-1 of the walk's sorted order: one JSON
                          line of their counts, then the rows in the output's encoding

Each file is written whole (aside and renamed on disk, one PUT in a bucket), so a part is
there complete or not at all. A run of the same command finds them, skips the files they
cover and, at the end, joins them with its own rows into --out (fmnist/scoring/outputs.py),
then removes the directory. A run that commits no part (a few seconds of files) never
creates it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fmnist.core import storage
from fmnist.core.errors import ScoreError
from fmnist.core.tables import count

PART_ROWS = 10_000  # rows a part holds at most: the pending rows are kept in memory
PART_SECONDS = 60.0  # and a part at least this often: slow photos lose at most a minute
MANIFEST = "manifest.json"
_PART = re.compile(r"^(\d{12})-(\d+)\.part$")


@dataclass
class Counts:
    """What a part's rows hold, for the summary of the whole run."""

    rows: int = 0
    failed: int = 0
    uncertain: int = 0
    per_class: list[int] = field(default_factory=lambda: [0] * 10)
    first_errors: list[list[str]] = field(default_factory=list)  # a few, for the summary

    def add(self, other: Counts) -> None:
        self.rows += other.rows
        self.failed += other.failed
        self.uncertain += other.uncertain
        self.per_class = [a + b for a, b in zip(self.per_class, other.per_class)]
        self.first_errors = (self.first_errors + other.first_errors)[:3]


@dataclass
class Part:
    first: int  # its first row's index in the walk
    rows: int
    location: object  # a Path or a UPath


def directory_for(out):
    """Where --out's parts go: `.<name>.parts` beside it, in the same store."""
    return out.parent / f".{out.name}.parts"


def manifest(
    *, model, model_metadata: dict, directory, entries: Iterable, out, options: dict
) -> dict:
    """What a run is, for a later run to tell whether its parts are its own.

    Args:
        model: the version directory scored with.
        model_metadata: its fmnist.json (run id, export time: a re-export differs).
        directory: the scored directory.
        entries: the walk's (path, error) pairs, in order (a list, or the walk itself:
            read once).
        out: --out (its format is its extension).
        options: the options that change rows.

    Returns:
        The manifest as a JSON object.
    """
    inputs = hashlib.sha256()
    files = 0
    for path, error in entries:
        files += 1
        inputs.update(f"{path}\0{error or ''}\n".encode("utf-8", "backslashreplace"))
    identity = json.dumps(model_metadata, sort_keys=True).encode()
    return {
        "model": storage.uri(model),
        "model_identity": hashlib.sha256(identity).hexdigest(),
        "directory": storage.uri(directory),
        "files": files,
        "inputs_sha256": inputs.hexdigest(),
        "format": out.suffix.lower().lstrip("."),
        "options": options,
    }


# What a message calls each manifest key that differs.
_WHAT = {
    "model": "another model",
    "model_identity": "another export of the same model version",
    "directory": "another directory",
    "files": "another set of files",
    "inputs_sha256": "another set of files",
    "format": "another format",
    "options": "other options",
}


class Parts:
    """The parts directory of `out`; nothing is created before the first commit."""

    def __init__(self, out, rows: int = PART_ROWS, seconds: float = PART_SECONDS):
        out = storage.as_location(out)
        self.out, self.dir = out, directory_for(out)
        self.rows, self.seconds = rows, seconds
        self.manifest: dict | None = None
        self.created = False
        self.committed_rows = 0  # in parts, this run's and those it resumed

    def resume(self, manifest: dict, restart: bool = False) -> list[Part]:
        """The parts an earlier run of this same manifest committed: a chain of rows from
        the first, in order ([] when there are none). With `restart`, discards them.

        Raises:
            ScoreError: the parts are of another run (model, files, options); one line.
        """
        self.manifest = manifest
        found = self._listing()
        if restart or not (self.dir / MANIFEST).exists():
            # No manifest: killed as it began (the manifest goes first); nothing to keep.
            if found or restart or self.dir.exists():
                storage.remove_tree(self.dir)
            return []
        old = json.loads((self.dir / MANIFEST).read_bytes())
        chain, stale, expected = [], [], 0
        for part in found:
            if part.first == expected:
                chain.append(part)
                expected += part.rows
            else:  # past a gap or overlapping (never in one run at a time): not used
                stale.append(part)
        if old != manifest:
            differs = sorted({_WHAT.get(k, k) for k in manifest if old.get(k) != manifest[k]})
            raise ScoreError(
                f"--out {self.out}: {self.dir.name}/ holds {count(expected, 'row')} of an "
                f"interrupted run with {' and '.join(differs)}; run that command again to "
                f"finish it, or add --restart to discard them"
            )
        for part in stale:
            part.location.unlink()
        self.created = True
        self.committed_rows = expected
        return chain

    def commit(self, first: int, counts: Counts, payload: bytes) -> Part:
        """Write one part whole (after the manifest, the first time)."""
        if not self.created:
            storage.write_json(self.dir / MANIFEST, self.manifest)
            self.created = True
        location = self.dir / f"{first:012d}-{counts.rows}.part"
        header = json.dumps(counts.__dict__, ensure_ascii=True).encode() + b"\n"
        storage.write_bytes(location, header + payload)
        self.committed_rows = first + counts.rows
        return Part(first, counts.rows, location)

    @staticmethod
    def read(part: Part) -> tuple[Counts, bytes]:
        """A part's counts and its rows' bytes."""
        data = part.location.read_bytes()
        header, _, payload = data.partition(b"\n")
        return Counts(**json.loads(header)), payload

    def remove(self) -> None:
        """Delete the parts (once --out is written and, for a bucket, uploaded)."""
        if self.created:
            storage.remove_tree(self.dir)
            self.created = False

    def _listing(self) -> list[Part]:
        try:
            names = [p.name for p in self.dir.iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        parts = []
        for name in names:
            match = _PART.match(name)
            if match:
                parts.append(Part(int(match[1]), int(match[2]), self.dir / name))
        return sorted(parts, key=lambda p: (p.first, p.rows))
