"""`fmnist-job guard`: run a scheduled job at most once at a time and not too late
(fmnist/ops/guard.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli import reporting
from fmnist.cli.common import EXIT_OK, fail


@reporting.reported("guard")
def guard(
    ctx: typer.Context,
    lease: Annotated[
        Path, typer.Option(help="Lease file on the volume every run shares (its .lock beside it).")
    ],
    scheduled: Annotated[
        Optional[str],
        typer.Option(
            envvar="FMNIST_SCHEDULED",
            help="When this run was scheduled: an RFC 3339 time, or the RayJob's name when it "
            "ends in -<minutes since the epoch>. Empty: lateness is not checked.",
        ),
    ] = None,
    job_name: Annotated[
        Optional[str],
        typer.Option(
            envvar="FMNIST_JOB_NAME",
            help="The name of the Job or RayJob this run is (deploy/ passes it from a pod "
            "label). When it ends in -<minutes since the epoch>, as a CronJob's Jobs do, "
            "that is the scheduled time; otherwise lateness is not checked, with a "
            "warning, and the lease still applies.",
        ),
    ] = None,
    max_lateness_hours: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Skip the run when it starts more than this long after its scheduled time.",
        ),
    ] = 6.0,
    metrics_push: reporting.MetricsPush = None,
    metrics_file: reporting.MetricsFile = None,
) -> None:
    """Run COMMAND (after --) at most once at a time, and not too late.

    A skip (another guarded run holds the lease, or this one is too late) prints one
    line and exits 0. For the nightly job: deploy/README.md."""
    import os

    from fmnist.ops import guard

    command = list(ctx.args)
    if not command:
        raise fail("no command to run: fmnist-job guard --lease FILE -- COMMAND ARGS...")
    try:
        when = guard.scheduled_time(scheduled)
    except guard.GuardError as e:
        raise fail(str(e))
    if when is None and job_name:
        when = guard.time_in_name(job_name)
        if when is None:
            typer.echo(
                f"fmnist-job guard: warning: job name {job_name!r} carries no "
                f"scheduled time; lateness not checked",
                err=True,
            )
    fd, message = guard.acquire(lease, when, max_lateness_hours)
    typer.echo(f"fmnist-job guard: {message}", err=True)
    if reporting.current():
        reporting.current().set_guard(ran=fd is not None)
    if fd is None:
        raise typer.Exit(EXIT_OK)
    reporting.publish(EXIT_OK)  # now: exec leaves no end to publish at
    os.set_inheritable(fd, True)  # the command holds the lock until it exits
    try:
        os.execvp(command[0], command)
    except OSError as e:
        raise fail(f"cannot run {command[0]!r}: {e.strerror or e}")
