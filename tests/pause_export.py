"""Run Python with every export held just before its rename, so a test can signal or
kill the process at that moment (tests/test_faults.py, tests/test_gate.py):

    python tests/pause_export.py SECONDS -m fmnist.cli train ...
    python tests/pause_export.py SECONDS -c CODE
    python tests/pause_export.py SECONDS:DIR:N ...   (a barrier, below)

The hold is this process's own: fmnist.core.export.rename_into_place is wrapped here
before the module or code runs (the package has no hook for it). Only the process that
publishes needs it; Ray's workers never rename a version into place.

With `SECONDS:DIR:N` the hold is a barrier: each process marks its arrival in DIR and
waits until N processes have arrived (at most SECONDS), so racing runs are released
together rather than after a fixed sleep.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(seconds: float, *args: str, barrier: tuple[Path, int] | None = None) -> list[str]:
    """The argv that runs `python ARGS` (`-m module ...` or `-c code`) paused, or held at
    a barrier of `barrier` = (directory, processes)."""
    hold = str(seconds) if barrier is None else f"{seconds}:{barrier[0]}:{barrier[1]}"
    return [sys.executable, str(Path(__file__).resolve()), hold, *args]


def install(hold: str) -> None:
    from fmnist.core import export

    rename = export.rename_into_place
    seconds, *barrier = hold.split(":")

    def held(staging: Path, base: Path) -> Path:
        deadline = time.monotonic() + float(seconds)
        if barrier:
            where, count = Path(barrier[0]), int(barrier[1])
            where.mkdir(parents=True, exist_ok=True)
            (where / str(os.getpid())).touch()
            while len(list(where.iterdir())) < count and time.monotonic() < deadline:
                time.sleep(0.2)
        else:
            time.sleep(float(seconds))
        return rename(staging, base)

    export.rename_into_place = held


def main(argv: list[str]) -> None:
    seconds, how, what, *rest = argv
    sys.path[0] = str(ROOT)  # as `python -m`/`-c` run from the checkout would have it
    install(seconds)
    if how == "-m":
        sys.argv = [what, *rest]
        runpy.run_module(what, run_name="__main__", alter_sys=True)
    elif how == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(what, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102
    else:
        raise SystemExit(f"usage: {argv[0]} SECONDS -m MODULE ARGS... | -c CODE")


if __name__ == "__main__":
    main(sys.argv[1:])
