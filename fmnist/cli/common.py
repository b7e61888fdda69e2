"""What every command shares: exit codes, the one-line error, JSON-or-table rows."""

from __future__ import annotations

import json

import typer

# Exit codes (documented in the README).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3
EXIT_TOO_MANY_FAILED = 4  # score: more files failed than --max-errors allows


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"fmnist-job: error: {message}", err=True)
    return typer.Exit(code)


def place(text, option: str, *, write: bool = False):
    """The location an option names (a Path, or a UPath for s3://), checked now: a URI
    that cannot be used is a one-line error before any work starts.

    Args:
        text: the option's value (a str: pathlib would turn s3://b into s3:/b).
        option: its name, for the message.
        write: also prove an object can be written there.
    """
    from fmnist.core import storage

    try:
        path = storage.location(text, option)
        storage.check(path, option, write=write)
    except storage.LocationError as e:
        raise fail(str(e))
    return path


def echo_rows(rows: list[dict], as_json: bool, table) -> None:
    """JSON lines (one object a row, for scripts) or the aligned table."""
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
    else:
        typer.echo(table(rows))


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: cleanup code that
    catches Exception must not swallow it)."""


def raise_terminated(signum, frame):
    raise Terminated()


# Called with the exit code by exit_at_once, which skips every `finally` (the metrics).
before_exit: list = []


def exit_at_once(code: int) -> None:
    """Leave now, without the interpreter's teardown: for an interrupted command whose
    clean-up is done (outputs discarded, decoders and Ray stopped). TensorFlow's C++
    teardown alone takes over a second, and Ctrl-C must act within two
    (tests/test_progress.py)."""
    for hook in list(before_exit):
        hook(code)
    leave_now(code)


def leave_now(code: int) -> None:
    """Flush the output and end the process with `code`, skipping the interpreter's
    teardown."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
