"""`fmnist-job train`: options, the resume merge and exit codes; the sweep runs in
fmnist/training/sweep.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli import reporting
from fmnist.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, place


@reporting.reported("train", skip_when="dry_run")
def train(
    workers: Annotated[
        int, typer.Option(min=1, help="Variants trained at once (one Ray task each).")
    ] = 4,
    sweep: Annotated[
        Optional[Path],
        typer.Option(
            help="Sweep file (TOML) listing the variants. Default: the default sweep packaged "
            "with fmnist-job (fmnist/jobs/default.toml; jobs/default.toml in a "
            "checkout), whatever the working directory."
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help="Override every variant's epochs (quick runs).")
    ] = None,
    address: Annotated[
        Optional[str],
        typer.Option(
            envvar="RAY_ADDRESS",
            help="Ray cluster to join ('auto', 'host:6379', 'ray://host:10001'). "
            "Default: start an embedded local Ray.",
        ),
    ] = None,
    cpus_per_worker: Annotated[
        Optional[float],
        typer.Option(
            min=0.01,
            help="CPUs each task asks Ray for (and TensorFlow threads). "
            "Default: the cluster's CPUs shared among --workers, at least 1 "
            "(fewer than --workers then run at once on a small cluster).",
        ),
    ] = None,
    gpus_per_worker: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            help="GPUs each task asks Ray for, fractional allowed. "
            "Default: a share of the GPUs when the cluster has any, else 0.",
        ),
    ] = None,
    threads_per_worker: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="TensorFlow threads per task. Default: the task's CPUs, rounded (at least 1). "
            "More than that lets a sweep's last task use cores the finished "
            "ones left idle, at the price of oversubscription while all run.",
        ),
    ] = None,
    runs_dir: Annotated[
        Optional[str],
        typer.Option(
            help="Run directory for results.json and plots. Default: runs/<timestamp>-<id>/."
        ),
    ] = None,
    export_dir: Annotated[
        str,
        typer.Option(
            help="Export base (a directory, or s3://BUCKET/PATH); the best model goes to "
            "<export-dir>/<next version>/."
        ),
    ] = "models/fmnist",
    data_dir: Annotated[
        Optional[Path],
        typer.Option(
            envvar="FMNIST_DATA_DIR",
            help="Directory with the four Fashion-MNIST .gz files. "
            "Default: the copy bundled with the package.",
        ),
    ] = None,
    val_size: Annotated[
        Optional[int],
        typer.Option(
            min=100,
            help="Validation images carved (stratified) from the training set. "
            "Default: 5000, or a tenth of --limit.",
        ),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option(min=200, help="Use only this many training images (stratified; quick runs)."),
    ] = None,
    ensemble: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            max=50,
            help="Export an ensemble of the finished variants, chosen greedily on validation "
            "in up to N steps (members may repeat; weights k/N). 1: the single best. "
            "Default: the sweep file's [ensemble] size, else 1.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the sweep's variants (grids and random samples expanded) "
            "and exit, without starting anything.",
        ),
    ] = False,
    resume: Annotated[
        Optional[str],
        typer.Option(
            help="Finish an interrupted run: its directory. Finished variants are kept, "
            "the others continue from their checkpoints; the run's own sweep and data "
            "settings are used."
        ),
    ] = None,
    gate_tolerance: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Quality gate: the winner becomes `stable` unless its validation "
            "accuracy is below the stable version's (on this run's validation "
            "split) by more than this many points; else it is labelled "
            "`candidate`.",
        ),
    ] = 0.2,
    metrics_push: reporting.MetricsPush = None,
    metrics_file: reporting.MetricsFile = None,
    mlflow_uri: reporting.MlflowUri = None,
) -> None:
    """Train the sweep's variants as parallel Ray tasks and export the best as a SavedModel."""
    mlflow_uri = reporting.check_mlflow(mlflow_uri)
    export_dir = place(export_dir, "--export-dir", write=True)
    runs_dir = None if runs_dir is None else place(runs_dir, "--runs-dir", write=True)
    resume = None if resume is None else place(resume, "--resume", write=True)
    options = dict(
        workers=workers,
        address=address,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
        threads_per_worker=threads_per_worker,
        export_dir=export_dir,
        data_dir=data_dir,
        gate_tolerance=gate_tolerance,
    )
    if export_dir.exists() and not export_dir.is_dir():
        raise fail(f"--export-dir {export_dir} is a file; name a directory to export into")
    if resume is not None:
        # A resumed run keeps its own sweep and data split (its checkpoints were made
        # with them): an option that would change them is refused, not ignored.
        given = [
            option
            for option, value in (
                ("--sweep", sweep),
                ("--epochs", epochs),
                ("--limit", limit),
                ("--val-size", val_size),
                ("--runs-dir", runs_dir),
                ("--dry-run", dry_run or None),
                ("--ensemble", ensemble),
            )
            if value is not None
        ]
        if given:
            raise fail(
                f"--resume continues the run with its own settings; drop "
                f"{', '.join(given)} (or start a new run without --resume)"
            )
        job = _resumed_job(resume, options)
        _run(job, mlflow_uri)
        return
    job = _new_job(sweep, epochs, ensemble, dry_run, val_size, limit, runs_dir, options)
    try:
        _run(job, mlflow_uri)
    except typer.Exit as stop:
        if stop.exit_code == EXIT_USAGE and job.trials:
            _abandon_trials(job)
        raise


def _abandon_trials(job) -> None:
    """A new run refused before anything was recorded (no run to resume): its trials
    are told FAIL, else the study would keep them RUNNING and TPE count them as poor."""
    from fmnist.ops.results import VariantResult
    from fmnist.training import study

    failed = [
        VariantResult(name=name, config={}, status="failed", error="the run did not start")
        for name in job.trials
    ]
    try:
        if not (job.runs_dir / "results.json").exists():  # else `--resume` tells them
            study.tell(job.runs_dir, job.trials, failed, None)
    except Exception:  # noqa: BLE001 (the refusal's own message is what the user needs)
        pass


def _new_job(
    sweep: Path | None,
    epochs: int | None,
    ensemble: int | None,
    dry_run: bool,
    val_size: int | None,
    limit: int | None,
    runs_dir: Path | None,
    options: dict,
):
    from fmnist.training import variants as variants_mod

    sweep = sweep if sweep is not None else variants_mod.DEFAULT_SWEEP

    def expand(study=None):
        chosen = variants_mod.with_epochs(variants_mod.parse(text, str(sweep), study), epochs)
        halving = variants_mod.halving(text, chosen, epochs, str(sweep))
        if halving:  # every variant runs to the last rung's epoch if it gets there
            chosen = variants_mod.with_epochs(chosen, halving.max_epochs)
        return chosen, halving

    try:
        text = variants_mod.read(sweep)
        # [[study]] tables are previewed first: the study is asked only once every
        # setting is known to be good, and never by --dry-run.
        chosen, halving = expand()
        ensemble = ensemble or variants_mod.ensemble_size(text, str(sweep))
    except variants_mod.SweepError as e:
        raise fail(str(e))
    if dry_run:
        from fmnist.training import report

        report.make_console().print(report.sweep_table(chosen, sweep))
        raise typer.Exit(EXIT_OK)
    if val_size is None:
        val_size = 5000 if limit is None else max(100, limit // 10)
    if limit is not None and val_size >= limit:
        raise fail(f"--val-size {val_size} must be smaller than --limit {limit}")
    if runs_dir is not None and runs_dir.is_dir() and any(runs_dir.iterdir()):
        # Its checkpoints and epoch logs would be taken for this run's own.
        raise fail(
            f"--runs-dir {runs_dir} is not empty; name a new directory, or "
            f"continue that run with --resume {runs_dir}"
        )
    # No TensorFlow here: the Ray tasks train and export, the driver only coordinates.
    from fmnist.training import rundir
    from fmnist.training import sweep as sweep_mod

    runs_dir = runs_dir or rundir.new_run_dir()
    trials = {}
    if variants_mod.has_study(text):
        from fmnist.core import storage
        from fmnist.training import study

        try:  # two nights' appends to a study in a bucket are kept apart by If-None-Match
            storage.check_conditional(runs_dir, "--runs-dir", "a [[study]] in a bucket")
        except storage.LocationError as e:
            raise fail(str(e))
        asker = study.Asker(runs_dir)
        try:
            chosen, halving = expand(asker)
        except variants_mod.SweepError as e:
            raise fail(str(e))
        trials = asker.trials
    return sweep_mod.SweepJob(
        chosen,
        runs_dir=runs_dir,
        sweep_file=sweep,
        val_size=val_size,
        limit=limit,
        ensemble_size=ensemble,
        halving=halving,
        trials=trials,
        **options,
    )


def _resumed_job(resume: Path, options: dict):
    from fmnist.training import rundir
    from fmnist.training import sweep as sweep_mod
    from fmnist.training import variants as variants_mod

    try:
        return sweep_mod.SweepJob.resume(resume, **options)
    except (rundir.ResumeError, variants_mod.SweepError) as e:
        raise fail(str(e))


def _run(job, mlflow_uri: str | None = None) -> None:
    from fmnist.core import cluster, data, files, storage
    from fmnist.core.errors import RunError
    from fmnist.ops import versions
    from fmnist.training import sweep as sweep_mod
    from fmnist.training.session import Interrupted

    if reporting.current():  # what results.json says when the run ends, however it ends
        reporting.current().train_run = (job.runs_dir, job.export_dir)
    # Found now, not as a traceback after an hour of training; a run that fails before
    # it starts leaves no empty run or export directory behind.
    places = [  # a bucket was checked by place()
        (option, path)
        for option, path in (("--runs-dir", job.runs_dir), ("--export-dir", job.export_dir))
        if not storage.is_remote(path)
    ]
    created = [files.missing_parents(path) for _, path in places]

    def remove_created():
        for missing in created:
            files.remove_empty(missing)

    for option, path in places:
        try:
            files.check_writable(path)
        except OSError as e:
            remove_created()
            raise fail(
                f"{option} {path}: cannot write there ({e.strerror or e}); "
                f"name a directory this user can write to"
            )

    def track():
        if mlflow_uri:
            from fmnist.ops import tracking

            reporting.warn(tracking.log_train(mlflow_uri, job.runs_dir, job.export_dir))

    try:
        results = sweep_mod.run(job)
    except (data.DataError, cluster.ConnectError, versions.VersionsError) as e:
        remove_created()
        raise fail(str(e))
    except RunError as e:  # after training: the message says where its result is
        track()
        raise fail(str(e), EXIT_FAILED)
    except Interrupted as stop:
        if stop.published:
            typer.echo(
                f"fmnist-job: interrupted ({stop}) after the run finished; "
                f"{stop.published} is complete",
                err=True,
            )
        else:
            typer.echo(
                f"fmnist-job: interrupted ({stop}); what finished is saved. "
                f"Resume with: fmnist-job train --resume {stop.run_dir}",
                err=True,
            )
        raise typer.Exit(stop.code)
    track()
    raise typer.Exit(EXIT_OK if results.best else EXIT_FAILED)
