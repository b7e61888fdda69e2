"""fmnist-job: the command line. One module per command or group (Typer's "one file per
command"): each parses its options, hands over to its side's package and maps that
side's errors to exit codes (fmnist/cli/common.py).

TensorFlow and Ray are imported inside the commands, never at module level, so that
`fmnist-job --help` (and a typo in an option) answers at once.
"""

from __future__ import annotations

import threading

import typer

from fmnist.cli import guard, models, runs, score, train
from fmnist.cli.common import EXIT_USAGE, leave_now

# Plain Click help: rich markup swallowed "[ensemble]" in option help, and showed flags
# as "--dry-run <bool>".
app = typer.Typer(
    rich_markup_mode=None,
    help="Train Fashion-MNIST dense classifiers in parallel on Ray and score images "
    "with the best one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(short_help="Train the sweep on Ray and export the best as a SavedModel.")(train.train)
app.command()(score.score)
app.add_typer(
    models.app,
    name="models",
    short_help="Exported versions and their labels (TF Serving's models.config).",
)
app.add_typer(runs.app, name="runs")
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    guard.guard
)


def main() -> int:
    """Entry point: Click's usage errors become one line and exit code 2."""
    from fmnist.core.internals import click_usage_errors

    NoArgsIsHelpError, UsageError = click_usage_errors()

    try:
        code = app(prog_name="fmnist-job", standalone_mode=False)
    except NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx else str(e), err=True)
        return EXIT_USAGE
    except UsageError as e:
        hint = (
            f" (see '{e.ctx.command_path} --help')"
            if e.ctx and e.ctx.parent
            else " (see 'fmnist-job --help')"
        )
        typer.echo(f"fmnist-job: error: {e.format_message()}{hint}", err=True)
        return EXIT_USAGE
    except typer.Abort:  # Ctrl-C while Click was prompting or parsing
        return 130
    return code or 0


def run() -> None:
    """The process's entry point: the `fmnist-job` script and `python -m fmnist.cli`.

    The process ends as the interpreter would end it, up to its teardown: the threads
    still running joined, the atexit handlers run (Ray's shutdown and logging's flush
    among them), the output flushed; then it leaves with the command's exit code. In
    the teardown, a native thread of Ray's or TensorFlow's that calls into Python aborts
    the process (SIGABRT in place of the exit code, seen in CI: docs/performance.md,
    "CI"). Tests call main() in their own process, which this would end."""
    from fmnist.core.internals import run_exit_handlers

    code = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    run_exit_handlers()
    leave_now(code)
