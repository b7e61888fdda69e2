"""`fmnist-job score`: options, signals and exit codes; the run is
fmnist/scoring/score.py."""

from __future__ import annotations

import signal
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli import reporting
from fmnist.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_TOO_MANY_FAILED,
    Terminated,
    exit_at_once,
    fail,
    place,
    raise_terminated,
)


class Invert(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class Fit(str, Enum):
    auto = "auto"
    trim = "trim"
    whole = "whole"


def _as_job(options: dict) -> bool:
    """Whether this run goes to the cluster as a Ray job (--ray with a ray:// or a Jobs
    API address): Ray Data needs a driver on the cluster (ray#42739)."""
    address = options.get("address") or ""
    return bool(options.get("ray")) and address.startswith(("ray://", "http://", "https://"))


# The job's own `fmnist-job score` reports its metrics.
@reporting.reported("score", skip_when=_as_job)
def score(
    ctx: typer.Context,
    directory: Annotated[
        str, typer.Argument(help="Directory of images (or s3://...), scanned recursively.")
    ],
    model: Annotated[
        str,
        typer.Option(
            help="SavedModel version dir, or the export base: its `stable` version "
            "(models.config), the newest when nothing is labelled."
        ),
    ] = "models/fmnist",
    out: Annotated[
        str,
        typer.Option(
            help="Output file (or s3://...); .csv, .jsonl or .parquet decides the format."
        ),
    ] = "predictions.csv",
    invert: Annotated[
        Invert,
        typer.Option(
            help="Invert dark-on-light images: auto decides per image, from the corners' "
            "colour when trimming, from the border otherwise."
        ),
    ] = Invert.auto,
    fit: Annotated[
        Fit,
        typer.Option(
            help="How the item is framed in 28x28. trim: cut the margins of the corners' "
            "colour, then the longest edge to 28 (photos; Fashion-MNIST's own "
            "conversion). whole: the whole image. auto: trim, except 28x28 images."
        ),
    ] = Fit.auto,
    preview: Annotated[
        Optional[str],
        typer.Option(
            help="Also write a contact sheet (.png) of the first inputs as the model saw "
            "them, with the predicted class and confidence under each."
        ),
    ] = None,
    preview_count: Annotated[
        int, typer.Option(min=1, help="How many inputs the --preview sheet shows.")
    ] = 100,
    save_inputs: Annotated[
        Optional[str],
        typer.Option(
            help="Also write every converted 28x28 input as a PNG under this directory "
            "(<relative path>.png)."
        ),
    ] = None,
    min_confidence: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            max=1.0,
            help="Rows below this calibrated confidence are `uncertain` (true in that column). "
            "Default: the threshold chosen on validation at export (0.5 for older "
            "exports).",
        ),
    ] = None,
    max_errors: Annotated[
        Optional[str],
        typer.Option(
            metavar="N|P%",
            help="Error budget: past this many failed files (10) or this share of the files "
            "(5%), exit 4 instead of 3; the rows are written either way. Default: unlimited.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 1024,
    decoders: Annotated[
        Optional[int],
        typer.Option(min=1, help="Parallel decoding processes. Default: one per CPU."),
    ] = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Score on a Ray cluster with Ray Data.")
    ] = False,
    address: Annotated[
        Optional[str],
        typer.Option(
            envvar="RAY_ADDRESS",
            help="Ray cluster to join with --ray. Default: an embedded local Ray.",
        ),
    ] = None,
    done: Annotated[
        Optional[str],
        typer.Option(
            help="After writing --out, move every file it scored from DIRECTORY to "
            "DONE/<--out's name without extension>/ (same volume; done/run1/ for --out "
            "run1.csv), so the next run scores only new files. Files that failed stay."
        ),
    ] = None,
    failed_to: Annotated[
        Optional[str],
        typer.Option(
            help="With --done: move the files that failed to FAILED_TO/<--out's name without "
            "extension>/ instead of leaving them in DIRECTORY to be tried again."
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Discard the parts an interrupted run left beside --out and score "
            "every file again (without it, the same command resumes them).",
        ),
    ] = False,
    part_rows: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rows per part committed beside --out as the run goes (one at least "
            "every minute too), so that a run stopped midway resumes.",
        ),
    ] = 10_000,
    metrics_push: reporting.MetricsPush = None,
    metrics_file: reporting.MetricsFile = None,
) -> None:
    """Score every image under DIRECTORY with the exported SavedModel."""
    # TensorFlow is imported (quietly) by serving.load_model, after the cheap checks.
    from fmnist.core import storage
    from fmnist.core.errors import DecoderDied, RunError, ScoreError
    from fmnist.scoring import score as score_mod

    if failed_to is not None and done is None:
        raise fail("--failed-to works with --done; add --done DIR (where the scored files go)")
    if _as_job({"ray": ray, "address": address}):
        _run_as_job(ctx, address)
    directory = place(directory, "DIRECTORY")
    model = place(model, "--model")
    out = place(out, "--out", write=True)
    preview = None if preview is None else place(preview, "--preview", write=True)
    save_inputs = None if save_inputs is None else place(save_inputs, "--save-inputs", write=True)
    done = None if done is None else place(done, "--done", write=True)
    failed_to = None if failed_to is None else place(failed_to, "--failed-to", write=True)
    for option, path in (("--done", done), ("--failed-to", failed_to)):
        if path is None:
            continue
        if storage.is_remote(path) != storage.is_remote(directory):
            raise fail(
                f"{option} {path}: files are moved within one store; name a "
                f"{'bucket' if storage.is_remote(directory) else 'local'} location as "
                f"DIRECTORY {directory} is"
            )
        if storage.inside(directory, path):
            raise fail(
                f"{option} {path} is inside {directory}: the next run would score it "
                f"again; put it beside the inbox"
            )

    # SIGTERM (an eviction, `docker stop`) must clean up as Ctrl-C does: the temporary
    # output removed, the decoder processes or the embedded Ray stopped. Python's default
    # would kill this process on the spot and leave both behind.
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        summary = score_mod.score(
            directory,
            model=model,
            out=out,
            invert=invert.value,
            fit=fit.value,
            batch_size=batch_size,
            decoders=decoders,
            use_ray=ray,
            address=address,
            preview_to=preview,
            preview_count=preview_count,
            save_inputs=save_inputs,
            min_confidence=min_confidence,
            max_errors=max_errors,
            restart=restart,
            part_rows=part_rows,
        )
    except ScoreError as e:  # before anything was scored
        raise fail(str(e))
    except DecoderDied as e:  # a stuck pool would keep the interpreter from exiting
        if not e.pool_stuck:
            raise fail(_resumable(e), EXIT_FAILED)
        typer.echo(f"fmnist-job: error: {_resumable(e)}", err=True)
        exit_at_once(EXIT_FAILED)
    except RunError as e:  # broke midway; --out not written (its parts kept)
        raise fail(_resumable(e), EXIT_FAILED)
    except (KeyboardInterrupt, Terminated) as e:
        sig = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        kept = getattr(e, "resume", None)
        typer.echo(
            f"fmnist-job: interrupted ({sig}); "
            + (f"{out} not written; {kept}" if kept else "nothing written"),
            err=True,
        )
        exit_at_once(143 if sig == "SIGTERM" else 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if reporting.current():
        reporting.current().set_score(
            files=summary.files,
            failed=summary.failed,
            uncertain=summary.uncertain,
            images_per_second=summary.images_per_second,
            model=summary.model,
        )
    if done is not None:
        _archive(out, directory, done, failed_to)
    if summary.over_budget:
        raise fail(
            f"{summary.failed:,} of {summary.files:,} files failed, over the error budget "
            f"({summary.max_errors.describe(summary.files)}); the rows are in {out}",
            EXIT_TOO_MANY_FAILED,
        )
    raise typer.Exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)


def _resumable(e: Exception) -> str:
    """The error's message, and what its run committed in parts (fmnist/scoring/parts.py)."""
    kept = getattr(e, "resume", None)
    return f"{e}; {kept}" if kept else str(e)


def _archive(out: Path, directory: Path, done: Path, failed_to: Path | None) -> None:
    from fmnist.core.tables import count
    from fmnist.scoring import inbox

    try:
        archived = inbox.archive(out, directory, done, failed_to)
    except OSError as e:
        raise fail(
            f"--done {done}: cannot move the scored files ({e.strerror or e}); "
            f"{out} is written, the inbox is as it was",
            EXIT_FAILED,
        )
    parts = [f"moved {count(archived.moved, 'scored file')} to {inbox.target(done, out)}/"]
    if archived.failed_kept:
        parts.append(
            f"{count(archived.failed_kept, 'file')} that failed left in {directory} "
            f"to be tried again (--failed-to DIR moves them)"
        )
    if failed_to is not None:
        parts.append(
            f"moved {count(archived.failed_moved, 'file')} that failed to "
            f"{inbox.target(failed_to, out)}/"
        )
    if archived.missing:
        parts.append(f"{count(archived.missing, 'row')} had no file to move")
    typer.echo("score: " + "; ".join(parts), err=True)


# Options naming a location: with a job they are read on the cluster's head.
_LOCATIONS = {
    "directory", "model", "out", "preview", "save_inputs", "done", "failed_to", "metrics_file"
}  # fmt: skip


def _job_arguments(ctx: typer.Context) -> list[str]:
    """This command's arguments for `fmnist-job score` on the head: the same, with
    --address auto (the cluster the job runs in). A relative local path would name a
    place in the job's working directory there: a one-line error."""
    from fmnist.core import storage

    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "address" or value is None or value is False:
            continue
        text = str(value.value if isinstance(value, Enum) else value)
        positional = param.param_type_name == "argument"
        name = "DIRECTORY" if positional else param.opts[0]
        if param.name in _LOCATIONS and not storage.is_uri(text) and not Path(text).is_absolute():
            raise fail(
                f"{name} {text}: a relative path, but with --ray and a ray:// address the "
                f"command runs on the cluster's head; give an absolute path the cluster "
                f"sees (a shared disk) or an s3:// URI"
            )
        if positional:
            args.append(text)
        else:
            args += [name] if value is True else [name, text]
    return [*args, "--address", "auto"]


def _run_as_job(ctx: typer.Context, address: str) -> None:
    """Run this command on the cluster as a Ray job, its output streamed to stderr;
    exit with its exit code. Ctrl-C or SIGTERM stops the job."""
    import shlex
    import sys

    from fmnist.core import jobs
    from fmnist.core.cluster import ConnectError

    arguments = _job_arguments(ctx)
    try:
        job = jobs.Job(jobs.client(address), "fmnist-job score " + shlex.join(arguments))
    except (ConnectError, jobs.JobError) as e:
        raise fail(str(e))

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        typer.echo(
            f"score: running as Ray job {job.id} at {jobs.jobs_address(address)}; its "
            f"output follows (Ctrl-C stops it)",
            err=True,
        )
        outcome = job.follow(write)
    except (KeyboardInterrupt, Terminated) as e:
        sig = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        stopped = job.stop()
        typer.echo(
            f"fmnist-job: interrupted ({sig}); Ray job {job.id} {stopped.status.lower()}",
            err=True,
        )
        raise typer.Exit(143 if sig == "SIGTERM" else 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if outcome.exit_code == 127:
        raise fail(
            f"Ray job {job.id}: `fmnist-job` was not found on the cluster's head; install "
            f"it there, or start the head from the project's image (it has it)"
        )
    if outcome.exit_code is not None:
        raise typer.Exit(outcome.exit_code)
    if outcome.status != "SUCCEEDED":
        first = (outcome.message.splitlines() or ["no message"])[0]
        raise fail(f"Ray job {job.id} {outcome.status.lower()} before its command ran: {first}")
    raise typer.Exit(EXIT_OK)
