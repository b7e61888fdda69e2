"""A [[study]]'s journal in a bucket: Optuna's JournalStorage over one object per entry.

The journal `s3://BUCKET/PREFIX/.studies/<study>.journal/` holds Optuna's log entries as
objects named by their number, zero-padded (`0000000000`, `0000000001`, ...), each one
entry as JSON. An append makes the next number with S3's conditional write (If-None-Match,
`storage.create`): of two processes appending at once exactly one gets the number, and
the other reads the entries it had not seen and tries the number after them. A writer
only tries a number once it has read every lower one, so the numbers have no gaps and
every process replays the same entries in the same order, with no lock and no copy of
the whole journal (docs/design.md, "The study in a bucket").

A list given to `append_logs` is appended entry by entry, each under its own number (as
Optuna's Redis backend does); JournalStorage gives one entry at a time. Entries already
read are kept, so a reader only asks for the numbers after them.
"""

from __future__ import annotations

import json
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from fmnist.core import storage

DIGITS = 10


class BucketJournal(BaseJournalBackend):
    """Optuna's journal backend on a bucket's prefix.

    Args:
        path: the journal's prefix (a UPath), `<runs dir's parent>/.studies/<study>.journal`.
    """

    def __init__(self, path):
        self.path = path
        self.logs: list[dict[str, Any]] = []
        self.conflicts = 0  # appends that lost a number to another writer and retried
        self._listed = False

    def _entry(self, number: int):
        return self.path / f"{number:0{DIGITS}d}"

    def _catch_up(self) -> None:
        """Read the entries written since the last read (by any process)."""
        if not self._listed:  # the first read lists them all and fetches them at once
            self._listed = True
            try:
                names = {p.name for p in self.path.iterdir()}
            except (FileNotFoundError, NotADirectoryError):  # no entry yet: no prefix
                names = set()
            count = 0
            while self._entry(count).name in names:
                count += 1
            wanted = [self._entry(n) for n in range(len(self.logs), count)]
            self.logs += [json.loads(data) for data in storage.read_many(wanted)]
        while True:  # then one GET per new entry, and one that finds none
            try:
                data = self._entry(len(self.logs)).read_bytes()
            except FileNotFoundError:
                return
            self.logs.append(json.loads(data))

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        """The entries numbered `log_number_from` and after (Optuna's interface)."""
        self._catch_up()
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Each entry under the next free number, retried after a lost race."""
        for log in logs:
            data = json.dumps(log, separators=(",", ":")).encode()
            entry = json.loads(data)  # as other processes read it back
            while True:
                number = len(self.logs)
                try:
                    storage.create(self._entry(number), data)
                    self.logs.append(entry)
                    break
                except storage.Changed:
                    self._catch_up()
                    # A PUT that landed but whose answer was lost is retried by botocore
                    # and refused: the entry there is this one (its worker_id is ours).
                    if self.logs[number] == entry:
                        break
                    self.conflicts += 1
