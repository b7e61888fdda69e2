"""fmnist-job: the command line. Parses options, then hands over to sweep or score.

TensorFlow and Ray are imported inside the commands, never at module level, so that
`fmnist-job --help` (and a typo in an option) answers at once.
"""

from __future__ import annotations

import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Train Fashion-MNIST dense classifiers in parallel on Ray and score images "
         "with the best one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Exit codes (documented in the README).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"fmnist-job: error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def train(
    workers: Annotated[int, typer.Option(
        min=1, help="Variants trained at once (one Ray task each).")] = 4,
    sweep: Annotated[Optional[Path], typer.Option(
        help="Sweep file (TOML) listing the variants. Default: the default sweep packaged "
             "with fmnist-job (fmnist/jobs/default.toml; jobs/default.toml in a "
             "checkout), whatever the working directory.")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        min=1, help="Override every variant's epochs (quick runs).")] = None,
    address: Annotated[Optional[str], typer.Option(
        envvar="RAY_ADDRESS",
        help="Ray cluster to join ('auto', 'host:6379', 'ray://host:10001'). "
             "Default: start an embedded local Ray.")] = None,
    cpus_per_worker: Annotated[Optional[float], typer.Option(
        min=0.01, help="CPUs each task asks Ray for (and TensorFlow threads). "
                       "Default: the cluster's CPUs shared among --workers, at least 1 "
                       "(fewer than --workers then run at once on a small cluster).")] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(
        min=0.0, help="GPUs each task asks Ray for, fractional allowed. "
                      "Default: a share of the GPUs when the cluster has any, else 0.")] = None,
    threads_per_worker: Annotated[Optional[int], typer.Option(
        min=1, help="TensorFlow threads per task. Default: the task's CPUs, rounded (at least 1). "
                    "More than that lets a sweep's last task use cores the finished "
                    "ones left idle, at the price of oversubscription while all run.")]
        = None,
    runs_dir: Annotated[Optional[Path], typer.Option(
        help="Run directory for results.json and plots. "
             "Default: runs/<timestamp>-<id>/.")] = None,
    export_dir: Annotated[Path, typer.Option(
        help="Export base; the best model goes to <export-dir>/<next version>/.")]
        = Path("models/fmnist"),
    data_dir: Annotated[Optional[Path], typer.Option(
        envvar="FMNIST_DATA_DIR",
        help="Directory with the four Fashion-MNIST .gz files. "
             "Default: the copy bundled with the package.")] = None,
    val_size: Annotated[Optional[int], typer.Option(
        min=100, help="Validation images carved (stratified) from the training set. "
                      "Default: 5000, or a tenth of --limit.")] = None,
    limit: Annotated[Optional[int], typer.Option(
        min=200, help="Use only this many training images (stratified; quick runs).")] = None,
    ensemble: Annotated[Optional[int], typer.Option(
        min=1, max=50,
        help="Export an ensemble of the finished variants, chosen greedily on validation "
             "in up to N steps (members may repeat; weights k/N). 1: the single best. "
             "Default: the sweep file's [ensemble] size, else 1.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the sweep's variants (grids and random samples expanded) "
                          "and exit, without starting anything.")] = False,
    resume: Annotated[Optional[Path], typer.Option(
        help="Finish an interrupted run: its directory. Finished variants are kept, "
             "the others continue from their checkpoints; the run's own sweep and data "
             "settings are used.")] = None,
    gate_tolerance: Annotated[float, typer.Option(
        min=0.0, help="Quality gate: the winner becomes `stable` unless its validation "
                      "accuracy is below the stable version's (on this run's validation "
                      "split) by more than this many points; else it is labelled "
                      "`candidate`.")] = 0.2,
) -> None:
    """Train the sweep's variants as parallel Ray tasks and export the best as a SavedModel."""
    from fmnist import variants as variants_mod

    state = None
    if resume is not None:
        # A resumed run keeps its own sweep and data split (its checkpoints were made
        # with them): an option that would change them is refused, not ignored.
        given = [option for option, value in (
            ("--sweep", sweep), ("--epochs", epochs), ("--limit", limit),
            ("--val-size", val_size), ("--runs-dir", runs_dir),
            ("--dry-run", dry_run or None), ("--ensemble", ensemble)) if value is not None]
        if given:
            raise fail(f"--resume continues the run with its own settings; drop "
                       f"{', '.join(given)} (or start a new run without --resume)")
        from fmnist.sweep import ResumeError, read_resume_state
        try:
            state = read_resume_state(resume)
            chosen = [variants_mod.from_dict(c, f"{resume / 'results.json'}: sweep")
                      for c in state["sweep"]]
        except (ResumeError, variants_mod.SweepError) as e:
            raise fail(str(e))
        sweep = Path(state["sweep_file"]) if state.get("sweep_file") else None
        runs_dir, val_size, limit = resume, state["settings"]["val_size"], \
            state["settings"]["limit"]
        ensemble = state["settings"].get("ensemble", 1)
        data_dir = data_dir or (Path(state["settings"]["data_dir"])
                                if state["settings"]["data_dir"] else None)
    else:
        sweep = sweep if sweep is not None else variants_mod.DEFAULT_SWEEP
        try:
            text = variants_mod.read(sweep)
            chosen = variants_mod.with_epochs(variants_mod.parse(text, str(sweep)), epochs)
            ensemble = ensemble or variants_mod.ensemble_size(text, str(sweep))
        except variants_mod.SweepError as e:
            raise fail(str(e))
        if dry_run:
            from fmnist import report
            report.make_console().print(report.sweep_table(chosen, sweep))
            raise typer.Exit(EXIT_OK)
    if val_size is None:
        val_size = 5000 if limit is None else max(100, limit // 10)
    if limit is not None and val_size >= limit:
        raise fail(f"--val-size {val_size} must be smaller than --limit {limit}")
    if export_dir.exists() and not export_dir.is_dir():
        raise fail(f"--export-dir {export_dir} is a file; name a directory to export into")
    if state is None and runs_dir is not None and runs_dir.is_dir() \
            and any(runs_dir.iterdir()):
        # Its checkpoints and epoch logs would be taken for this run's own.
        raise fail(f"--runs-dir {runs_dir} is not empty; name a new directory, or "
                   f"continue that run with --resume {runs_dir}")

    # No TensorFlow here: the Ray tasks train and export, the driver only coordinates.
    from fmnist import cluster, data, files, sweep as sweep_mod, versions

    runs_dir = runs_dir or sweep_mod.new_run_dir()
    # Found now, not as a traceback after an hour of training.
    for option, path in (("--export-dir", export_dir), ("--runs-dir", runs_dir)):
        try:
            files.check_writable(path)
        except OSError as e:
            raise fail(f"{option} {path}: cannot write there ({e.strerror or e}); "
                       f"name a directory this user can write to")

    try:
        results = sweep_mod.run(
            chosen, sweep_file=sweep, workers=workers, address=address,
            cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            runs_dir=runs_dir, export_dir=export_dir, data_dir=data_dir,
            val_size=val_size, limit=limit, resume=state, ensemble_size=ensemble,
            threads_per_worker=threads_per_worker, gate_tolerance=gate_tolerance,
        )
    except (data.DataError, cluster.ConnectError, versions.VersionsError) as e:
        raise fail(str(e))
    except sweep_mod.Interrupted as stop:
        if stop.published:
            typer.echo(f"fmnist-job: interrupted ({stop}) after the run finished; "
                       f"{stop.published} is complete", err=True)
        else:
            typer.echo(f"fmnist-job: interrupted ({stop}); what finished is saved. "
                       f"Resume with: fmnist-job train --resume {stop.run_dir}", err=True)
        raise typer.Exit(stop.code)
    raise typer.Exit(EXIT_OK if results["best"] else EXIT_FAILED)


class Invert(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class Fit(str, Enum):
    auto = "auto"
    trim = "trim"
    whole = "whole"


@app.command()
def score(
    directory: Annotated[Path, typer.Argument(
        help="Directory of images, scanned recursively.")],
    model: Annotated[Path, typer.Option(
        help="SavedModel version dir, or the export base: its `stable` version "
             "(models.config), the newest when nothing is labelled.")]
        = Path("models/fmnist"),
    out: Annotated[Path, typer.Option(
        help="Output file; .csv or .jsonl decides the format.")] = Path("predictions.csv"),
    invert: Annotated[Invert, typer.Option(
        help="Invert dark-on-light images: auto decides per image, from the corners' "
             "colour when trimming, from the border otherwise.")]
        = Invert.auto,
    fit: Annotated[Fit, typer.Option(
        help="How the item is framed in 28x28. trim: cut the margins of the corners' "
             "colour, then the longest edge to 28 (photos; Fashion-MNIST's own "
             "conversion). whole: the whole image. auto: trim, except 28x28 images.")]
        = Fit.auto,
    preview: Annotated[Optional[Path], typer.Option(
        help="Also write a contact sheet (.png) of the first inputs as the model saw "
             "them, with the predicted class and confidence under each.")] = None,
    preview_count: Annotated[int, typer.Option(
        min=1, help="How many inputs the --preview sheet shows.")] = 100,
    save_inputs: Annotated[Optional[Path], typer.Option(
        help="Also write every converted 28x28 input as a PNG under this directory "
             "(<relative path>.png).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 1024,
    decoders: Annotated[Optional[int], typer.Option(
        min=1, help="Parallel decoding processes. Default: one per CPU.")] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Score on a Ray cluster with Ray Data.")] = False,
    address: Annotated[Optional[str], typer.Option(
        envvar="RAY_ADDRESS", help="Ray cluster to join with --ray. "
                                   "Default: an embedded local Ray.")] = None,
    done: Annotated[Optional[Path], typer.Option(
        help="After writing --out, move every file it has a row for from DIRECTORY to "
             "DONE/<--out's name>/ (same volume), so the next run scores only new files.")]
        = None,
) -> None:
    """Score every image under DIRECTORY with the exported SavedModel."""
    # TensorFlow is imported (quietly) by serving.load_model, after the cheap checks.
    from fmnist import score as score_mod
    from fmnist.errors import RunError, ScoreError

    if done is not None and directory.resolve() in (done.resolve(), *done.resolve().parents):
        raise fail(f"--done {done} is inside {directory}: the next run would score it again; "
                   f"put it beside the inbox")

    # SIGTERM (an eviction, `docker stop`) must clean up as Ctrl-C does: the temporary
    # output removed, the decoder processes or the embedded Ray stopped. Python's default
    # would kill this process on the spot and leave both behind.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        summary = score_mod.score(directory, model=model, out=out, invert=invert.value,
                                  fit=fit.value, batch_size=batch_size, decoders=decoders,
                                  use_ray=ray, address=address, preview_to=preview,
                                  preview_count=preview_count, save_inputs=save_inputs)
    except ScoreError as e:     # before anything was scored
        raise fail(str(e))
    except RunError as e:       # broke midway; nothing was written
        raise fail(str(e), EXIT_FAILED)
    except (KeyboardInterrupt, Terminated) as e:
        sig = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        typer.echo(f"fmnist-job: interrupted ({sig}); nothing written", err=True)
        raise typer.Exit(143 if sig == "SIGTERM" else 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if done is not None:
        from fmnist import inbox
        try:
            moved, left = inbox.archive(out, directory, done)
        except OSError as e:
            raise fail(f"--done {done}: cannot move the scored files ({e.strerror or e}); "
                       f"{out} is written, the inbox is as it was", EXIT_FAILED)
        typer.echo(f"score: moved {moved:,} scored file(s) to {done}"
                   + (f"; {left:,} row(s) had no file to move" if left else ""), err=True)
    raise typer.Exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)


models_app = typer.Typer(
    help="Exported versions and their labels (models.config, TF Serving's model config): "
         "list, promote, roll back, prune.", no_args_is_help=True)
app.add_typer(models_app, name="models")

ExportDir = Annotated[Path, typer.Option(
    "--export-dir", help="The export base fmnist-job train exported into.")]


@models_app.command("list")
def models_list(
    export_dir: ExportDir = Path("models/fmnist"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per version.")]
        = False,
) -> None:
    """Versions with their creation time, variant, val/test accuracy, labels and size."""
    from fmnist import versions
    try:
        rows = versions.listing(export_dir)
    except versions.VersionsError as e:
        raise fail(str(e))
    _echo_rows(rows, as_json, versions.table)


@models_app.command("promote")
def models_promote(
    version: Annotated[int, typer.Argument(help="The version to label stable.")],
    export_dir: ExportDir = Path("models/fmnist"),
) -> None:
    """Label VERSION `stable`: score and TF Serving use it from now on."""
    from fmnist import versions
    try:
        before, now = versions.promote(export_dir, version)
    except versions.VersionsError as e:
        raise fail(str(e))
    typer.echo(f"stable: version {now}" + (" (already)" if before == now else
                                          f" (was {before if before is not None else 'none'})"))


@models_app.command("rollback")
def models_rollback(export_dir: ExportDir = Path("models/fmnist")) -> None:
    """Label the previous `stable` version stable again."""
    from fmnist import versions
    try:
        before, now = versions.rollback(export_dir)
    except versions.VersionsError as e:
        raise fail(str(e))
    typer.echo(f"stable: version {now} (rolled back from {before})")


@models_app.command("prune")
def models_prune(
    keep: Annotated[int, typer.Option(
        min=0, help="Newest versions to keep; the stable and candidate versions and the "
                    "one rollback would return to are always kept.")],
    export_dir: ExportDir = Path("models/fmnist"),
) -> None:
    """Delete old versions."""
    from fmnist import versions
    try:
        gone = versions.prune(export_dir, keep)
    except versions.VersionsError as e:
        raise fail(str(e))
    typer.echo(f"pruned versions {', '.join(map(str, gone))}" if gone else "nothing to prune")


runs_app = typer.Typer(help="Training runs: what each night did.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    runs_dir: Annotated[Path, typer.Option(
        "--runs-dir", help="The directory holding the run directories.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per run.")]
        = False,
) -> None:
    """Runs, oldest first: start, duration, status, best variant, val/test accuracy,
    exported version and the quality gate's decision."""
    from fmnist import runs
    try:
        rows = runs.listing(runs_dir)
    except runs.RunsError as e:
        raise fail(str(e))
    _echo_rows(rows, as_json, runs.table)


def _echo_rows(rows: list[dict], as_json: bool, table) -> None:
    """JSON lines (one object a row, for scripts) or the aligned table."""
    import json

    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
    else:
        typer.echo(table(rows))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def guard(
    ctx: typer.Context,
    lease: Annotated[Path, typer.Option(
        help="Lease file on the volume every run shares (its .lock beside it).")],
    scheduled: Annotated[Optional[str], typer.Option(
        envvar="FMNIST_SCHEDULED",
        help="When this run was scheduled: an RFC 3339 time, or the RayJob's name when it "
             "ends in -<minutes since the epoch>. Empty: lateness is not checked.")] = None,
    job_name: Annotated[Optional[str], typer.Option(
        envvar="FMNIST_JOB_NAME",
        help="The name of the Job or RayJob this run is (deploy/ passes it from a pod "
             "label). When it ends in -<minutes since the epoch>, as a CronJob's Jobs do, "
             "that is the scheduled time; otherwise lateness is not checked, with a "
             "warning, and the lease still applies.")] = None,
    max_lateness_hours: Annotated[float, typer.Option(
        min=0.0, help="Skip the run when it starts more than this long after its "
                      "scheduled time.")] = 6.0,
) -> None:
    """Run COMMAND (after --) unless another guarded run holds the lease or this one is
    too late; a skip prints one line and exits 0. For the nightly job: deploy/README.md."""
    import os

    from fmnist import nightly
    command = list(ctx.args)
    if not command:
        raise fail("no command to run: fmnist-job guard --lease FILE -- COMMAND ARGS...")
    try:
        when = nightly.scheduled_time(scheduled)
    except nightly.GuardError as e:
        raise fail(str(e))
    if when is None and job_name:
        when = nightly.time_in_name(job_name)
        if when is None:
            typer.echo(f"fmnist-job guard: warning: job name {job_name!r} carries no "
                       f"scheduled time; lateness not checked", err=True)
    fd, message = nightly.acquire(lease, when, max_lateness_hours)
    typer.echo(f"fmnist-job guard: {message}", err=True)
    if fd is None:
        raise typer.Exit(EXIT_OK)
    os.set_inheritable(fd, True)  # the command holds the lock until it exits
    try:
        os.execvp(command[0], command)
    except OSError as e:
        raise fail(f"cannot run {command[0]!r}: {e.strerror or e}")


@runs_app.command("prune")
def runs_prune(
    keep_days: Annotated[float, typer.Option(
        min=0.0, help="Delete run directories nothing was written to for this many days.")],
    runs_dir: Annotated[Path, typer.Option(
        "--runs-dir", help="The directory holding the run directories.")] = Path("runs"),
) -> None:
    """Retention for run directories (results, checkpoints, TensorBoard files)."""
    from fmnist import runs
    try:
        gone = runs.prune(runs_dir, keep_days)
    except runs.RunsError as e:
        raise fail(str(e))
    typer.echo(f"pruned {len(gone)} run(s)" + (f": {', '.join(gone)}" if gone else ""))


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: cleanup code that
    catches Exception must not swallow it)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main() -> int:
    """Entry point: Click's usage errors become one line and exit code 2."""
    from fmnist.internals import click_usage_errors

    NoArgsIsHelpError, UsageError = click_usage_errors()

    try:
        code = app(prog_name="fmnist-job", standalone_mode=False)
    except NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx else str(e), err=True)
        return EXIT_USAGE
    except UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx and e.ctx.parent else \
            " (see 'fmnist-job --help')"
        typer.echo(f"fmnist-job: error: {e.format_message()}{hint}", err=True)
        return EXIT_USAGE
    except typer.Abort:  # Ctrl-C while Click was prompting or parsing
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
