"""`fmnist-job score`: options, signals and exit codes; the run is
fmnist/scoring/score.py."""

from __future__ import annotations

import signal
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli.common import (EXIT_FAILED, EXIT_OK, EXIT_SOME_FAILED, Terminated, fail,
                               raise_terminated)


class Invert(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class Fit(str, Enum):
    auto = "auto"
    trim = "trim"
    whole = "whole"


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
    min_confidence: Annotated[Optional[float], typer.Option(
        min=0.0, max=1.0,
        help="Rows below this calibrated confidence are `uncertain` (true in that column). "
             "Default: the threshold chosen on validation at export (0.5 for older "
             "exports).")] = None,
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
    from fmnist.scoring import score as score_mod
    from fmnist.core.errors import RunError, ScoreError

    if done is not None and directory.resolve() in (done.resolve(), *done.resolve().parents):
        raise fail(f"--done {done} is inside {directory}: the next run would score it again; "
                   f"put it beside the inbox")

    # SIGTERM (an eviction, `docker stop`) must clean up as Ctrl-C does: the temporary
    # output removed, the decoder processes or the embedded Ray stopped. Python's default
    # would kill this process on the spot and leave both behind.
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        summary = score_mod.score(directory, model=model, out=out, invert=invert.value,
                                  fit=fit.value, batch_size=batch_size, decoders=decoders,
                                  use_ray=ray, address=address, preview_to=preview,
                                  preview_count=preview_count, save_inputs=save_inputs,
                                  min_confidence=min_confidence)
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
        from fmnist.scoring import inbox
        try:
            moved, left = inbox.archive(out, directory, done)
        except OSError as e:
            raise fail(f"--done {done}: cannot move the scored files ({e.strerror or e}); "
                       f"{out} is written, the inbox is as it was", EXIT_FAILED)
        typer.echo(f"score: moved {moved:,} scored file(s) to {done}"
                   + (f"; {left:,} row(s) had no file to move" if left else ""), err=True)
    raise typer.Exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)

