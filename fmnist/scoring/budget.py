"""`score --max-errors`: how many failed files a run may have before it counts as broken.

A count (`10`) or a share of the files walked (`5%`). Past it the run still writes
every row; the command exits with a code of its own, so a scheduler can tell a few odd
files from an upload job that broke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from fmnist.core.errors import ScoreError


@dataclass(frozen=True)
class Budget:
    text: str  # as given: "10" or "5%"
    count: int | None = None
    percent: Fraction | None = None

    def allowed(self, files: int) -> int:
        """The most failed files a run over `files` files may have."""
        if self.count is not None:
            return self.count
        return int(self.percent * files / 100)  # floor: 5% of 30 files allows 1

    def exceeded(self, failed: int, files: int) -> bool:
        return failed > self.allowed(files)

    def describe(self, files: int) -> str:
        """`--max-errors 5%: at most 10` (the percentage worked out for `files`)."""
        if self.count is not None:
            return f"--max-errors {self.text}"
        return f"--max-errors {self.text}: at most {self.allowed(files):,} of {files:,}"


def parse(text: str | None) -> Budget | None:
    """`--max-errors`'s value; None (unlimited) for None. ScoreError for anything but a
    whole number or a percentage from 0% to 100%."""
    if text is None:
        return None
    given = text.strip()
    if re.fullmatch(r"\d+", given):
        return Budget(given, count=int(given))
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", given)
    if m and Fraction(m.group(1)) <= 100:
        return Budget(given.replace(" ", ""), percent=Fraction(m.group(1)))
    raise ScoreError(
        f"--max-errors {text!r}: give a number of files (10) or a percentage of the "
        f"files from 0% to 100% (5%)"
    )
