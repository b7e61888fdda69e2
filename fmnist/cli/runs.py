"""`fmnist-job runs ...`: training runs, what each night did (fmnist/ops/runs.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from fmnist.cli.common import echo_rows, fail, place

app = typer.Typer(
    rich_markup_mode=None, help="Training runs: what each night did.", no_args_is_help=True
)


@app.command("list", short_help="Runs, oldest first: status, best variant, export.")
def runs_list(
    runs_dir: Annotated[
        str,
        typer.Option("--runs-dir", help="The directory holding the run directories (or s3://...)."),
    ] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per run.")] = False,
) -> None:
    """Runs, oldest first: start, duration, status, best variant, val/test accuracy,
    exported version and the quality gate's decision."""
    from fmnist.ops import runs

    try:
        rows = runs.listing(place(runs_dir, "--runs-dir"))
    except runs.RunsError as e:
        raise fail(str(e))
    echo_rows(rows, as_json, runs.table)


@app.command("prune", short_help="Delete old run directories (retention).")
def runs_prune(
    keep_days: Annotated[
        float,
        typer.Option(
            min=0.0, help="Delete run directories nothing was written to for this many days."
        ),
    ],
    runs_dir: Annotated[
        str,
        typer.Option("--runs-dir", help="The directory holding the run directories (or s3://...)."),
    ] = "runs",
) -> None:
    """Retention for run directories (results, checkpoints, TensorBoard files)."""
    from fmnist.ops import runs

    try:
        gone = runs.prune(place(runs_dir, "--runs-dir"), keep_days)
    except runs.RunsError as e:
        raise fail(str(e))
    from fmnist.core.tables import count

    typer.echo(f"pruned {count(len(gone), 'run')}" + (f": {', '.join(gone)}" if gone else ""))
