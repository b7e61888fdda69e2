"""fmnist-job score: one prediction per image file under a directory, streamed to a file.

    walk the directory once (fmnist/scoring/walk.py) -> decode and predict, on this machine or
    with Ray Data (fmnist/scoring/backends.py) -> write rows to a temporary file beside --out
    (fmnist/scoring/outputs.py) -> rename it into place at the end

The model is the export's SavedModel (fmnist/scoring/savedmodel.py); score reads nothing else of
a training run. Memory stays flat in the images: at most a few chunks of decoded images
are in flight and rows are written batch by batch. The list of paths is held (about 150
bytes a file), so the progress bar knows the total from the one walk. A bad file never
stops the run: it becomes a row with `error` set. Only what makes the whole run
pointless (no directory, no usable model, an output that cannot be written) stops it,
before any scoring, with exit code 2.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fmnist.core import files, storage
from fmnist.core.errors import RunError, ScoreError
from fmnist.core.tables import count
from fmnist.scoring import backends, budget, images, preview, staging, uncertain
from fmnist.scoring import parts as parts_mod
from fmnist.scoring.outputs import Output
from fmnist.scoring.savedmodel import load_model, read_metadata, resolve_model
from fmnist.scoring.walk import WalkStats, walk, walk_bucket

PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when not on a terminal


# -----------------------------------------------------------------------------
# Progress: a rich bar on a terminal, a plain line every few seconds otherwise


def note(text: str) -> None:
    """A plain line on stderr (stdout is for the summary)."""
    from rich.console import Console

    Console(stderr=True).print(text, highlight=False, soft_wrap=True, markup=False)


class Progress:
    """Files decoded so far: a bar on a terminal, else a plain line every
    PLAIN_PROGRESS_EVERY seconds (from a thread of its own, so a line comes even while
    one slow file decodes)."""

    def __init__(self, total: int, enabled: bool = True):
        from rich.console import Console

        self.total, self.done, self.failed = total, 0, 0
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.started = time.monotonic()
        self.bar = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = None
        if enabled and self.console.is_terminal:
            from rich import progress as rp

            self.bar = rp.Progress(
                rp.TextColumn("scoring"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("{task.fields[failed]} failed"),
                rp.TextColumn("{task.fields[rate]} images/s"),
                rp.TimeElapsedColumn(),
                rp.TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.bar.add_task("score", total=total, failed=0, rate="-")
        elif enabled:
            self._ticker = threading.Thread(target=self._tick, name="score-progress", daemon=True)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        if self._ticker:
            self._ticker.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()
        self._stop.set()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def advance(self, files: int, failed: int) -> None:
        """`files` more decoded, `failed` of them with an error."""
        with self._lock:
            # At most the total: a Ray task run again after a lost worker reports twice.
            self.done = min(self.done + files, self.total)
            self.failed = min(self.failed + failed, self.done)
        if self.bar:
            self.bar.update(
                self.task, completed=self.done, failed=self.failed, rate=f"{self.rate():,.0f}"
            )

    def _tick(self) -> None:
        while not self._stop.wait(PLAIN_PROGRESS_EVERY):
            with self._lock:
                pct = 100 * self.done / self.total if self.total else 100.0
                text = (
                    f"score: {self.done:,}/{self.total:,} files ({pct:.1f}%), "
                    f"{self.failed:,} failed, {self.rate():,.0f} images/s"
                )
            note(text)


# -----------------------------------------------------------------------------
# The command


@dataclass
class Summary:
    directory: Path
    model: Path
    out: Path
    files: int = 0
    failed: int = 0
    ignored: int = 0
    linked_dirs: int = 0
    seconds: float = 0.0  # from the first file decoded to the last row written
    total_seconds: float = 0.0  # the whole run: checks, the model's loading, the walk
    uncertain: int = 0
    per_class: dict = field(default_factory=dict)
    first_errors: list = field(default_factory=list)
    max_errors: budget.Budget | None = None  # None: unlimited
    resumed: int = 0  # of the files: scored by an interrupted run, taken from its parts

    @property
    def scored(self) -> int:
        return self.files - self.failed

    @property
    def over_budget(self) -> bool:
        return self.max_errors is not None and self.max_errors.exceeded(self.failed, self.files)

    @property
    def images_per_second(self) -> float:
        return (self.files - self.resumed) / self.seconds if self.seconds > 0 else 0.0


def score(
    directory: Path,
    *,
    model: Path,
    out: Path,
    show: bool = True,
    preview_to: Path | None = None,
    save_inputs: Path | None = None,
    part_rows: int = parts_mod.PART_ROWS,
    **options,
) -> Summary:
    """Score every image file under `directory` into `out`. Raises ScoreError before
    anything is scored; RunError if the run breaks later (no output is left then, but
    the parts it committed are: see fmnist/scoring/parts.py; the exception's `resume`
    attribute then says how many rows and how to go on).
    Any of `directory`, `model`, `out`, `preview_to` and `save_inputs` may be in a bucket:
    the decoders read a bucket's photos themselves (fmnist/scoring/images.py), the outputs
    are uploaded at the end (fmnist/scoring/staging.py), the parts as they are committed.
    `part_rows` is the most rows a part holds; `options` are _score's."""
    parts = parts_mod.Parts(out, rows=part_rows)
    try:
        with staging.Staged(out, preview_to, save_inputs) as staged:
            summary, fmt, sheet, inputs_dir = _score(
                directory,
                model=model,
                out=staged.out,
                show=show,
                preview_to=staged.preview,
                save_inputs=staged.save_inputs,
                shown=directory,
                parts=parts,
                **options,
            )
            staged.upload()
    except BaseException as e:
        if parts.created and parts.committed_rows:
            e.resume = (
                f"{count(parts.committed_rows, 'row')} of {parts.manifest['files']:,} "
                f"committed in {parts.dir}; run the same command again to resume"
            )
        raise
    parts.remove()
    summary.directory, summary.out = directory, out
    if show:
        print_summary(summary, fmt)
        print_written(preview_to if sheet else None, len(sheet.tiles) if sheet else 0, save_inputs)
    return summary


def _score(
    directory: Path,
    *,
    model: Path,
    out: Path,
    invert: str = "auto",
    fit: str = "auto",
    batch_size: int = 1024,
    decoders: int | None = None,
    use_ray: bool = False,
    address: str | None = None,
    pool: str = "process",
    show: bool = True,
    preview_to: Path | None = None,
    preview_count: int = 100,
    save_inputs: Path | None = None,
    min_confidence: float | None = None,
    max_errors: str | None = None,
    shown: Path | None = None,
    parts: parts_mod.Parts | None = None,
    restart: bool = False,
) -> tuple[Summary, str, preview.ContactSheet | None, Path | None]:
    """score() with local outputs; returns the summary, the output's format,
    the contact sheet and the saved inputs' directory, for score() to print.
    `min_confidence` replaces the export's confidence threshold of the `uncertain`
    column (fmnist/scoring/uncertain.py); `max_errors` is the error budget
    (fmnist/scoring/budget.py), which the summary says the run is within or past;
    `shown` is the directory's name in messages; `parts` where the rows are committed
    as the run goes (and found when an earlier run of the same command was stopped), or
    None for none; `restart` discards such parts instead of resuming."""
    entered = time.monotonic()
    directory = directory if storage.is_remote(directory) else Path(directory)
    check_inputs(directory, invert, fit)
    allowed = budget.parse(max_errors)
    uncertain.check(min_confidence)
    resolved = resolve_model(model if storage.is_remote(model) else Path(model))
    version = resolved.path
    metadata = read_metadata(version)
    sheet = check_preview(Path(preview_to), preview_count) if preview_to else None
    inputs_dir = check_save_inputs(Path(save_inputs), directory) if save_inputs else None
    output = Output(Path(out), parts)  # before the expensive part: fails fast if unwritable
    stats = WalkStats()
    try:
        # Entered first: local decoders boot while TensorFlow imports in load_model.
        with (
            backends.OnRay(address, decoders) if use_ray else backends.Local(decoders, pool)
        ) as backend:
            net = load_model(version, metadata)
            flag = uncertain.rule(metadata, net.signals, min_confidence)
            if show and flag.note:
                note(flag.note)
            seen = observer(sheet, inputs_dir, net.class_names)
            if use_ray or storage.is_remote(directory):
                listed = list(
                    (walk_bucket if storage.is_remote(directory) else walk)(directory, stats)
                )
            else:
                # Walked once to count (and digest) the files, again as the decoders read:
                # a list of every path would grow with the files (docs/performance.md).
                listed = None

            def first_walk():
                return listed if listed is not None else walk(directory)

            identity = None
            if parts is not None:
                identity = parts_mod.manifest(
                    model=version,
                    model_metadata=metadata.dump(),
                    directory=shown or directory,
                    entries=first_walk(),
                    out=parts.out,
                    options=dict(
                        invert=invert,
                        fit=fit,
                        min_confidence=min_confidence,
                        batch_size=batch_size,
                        # Ray's actors use one thread, this process all cores: the
                        # kernels sum in another order, the last bits may differ.
                        ray=use_ray,
                    ),
                )
                total = identity["files"]
            else:
                total = sum(1 for _ in first_walk())
            if show:
                note(
                    f"score: {total:,} image files under {shown or directory} "
                    f"with model {version}" + (f" ({resolved.why})" if resolved.why else "")
                )
            if identity is not None:
                output.resume(parts.resume(identity, restart=restart))
            done = output.rows
            if show and done:
                note(
                    f"score: resuming: {done:,} of the {total:,} files were scored by "
                    f"an interrupted run ({parts.dir}); scoring the other {total - done:,}"
                )
            todo = (
                listed[done:]
                if listed is not None
                else itertools.islice(walk(directory, stats), done, None)
            )
            with Progress(total, enabled=show) as progress:
                progress.advance(done, output.failed)
                started = time.monotonic()
                # Closed here, not by the garbage collector: the backend's threads
                # must have ended before the backend is left (OnRay.__exit__).
                with contextlib.closing(
                    backend.batches(
                        directory,
                        todo,
                        net,
                        invert=invert,
                        fit=fit,
                        batch_size=batch_size,
                        on_decoded=progress.advance,
                    )
                ) as batches:
                    for paths, errors, x, probs, signals in batches:
                        unsure = flag.flags(probs, signals)
                        output.write(paths, errors, probs, net.class_names, unsure)
                        if seen:
                            seen(paths, errors, x, probs, unsure)
                seconds = time.monotonic() - started
            if sheet:
                try:
                    sheet.write()
                except OSError as e:
                    raise RunError(
                        f"--preview {sheet.path}: writing failed ({e.strerror})"
                    ) from None
        output.commit()
    except BaseException:
        output.discard()
        raise
    summary = Summary(
        directory,
        version,
        Path(out),
        files=output.rows,
        failed=output.failed,
        ignored=stats.ignored,
        linked_dirs=stats.linked_dirs,
        seconds=seconds,
        total_seconds=time.monotonic() - entered,
        uncertain=output.total.uncertain,
        per_class=dict(zip(net.class_names, output.total.per_class)),
        first_errors=output.first_errors,
        max_errors=allowed,
        resumed=done,
    )
    return summary, output.format, sheet, inputs_dir


def print_written(sheet: Path | None, tiles: int, inputs_dir: Path | None) -> None:
    if sheet:
        say(f"wrote {sheet} (the first {tiles:,} inputs as the model saw them)")
    if inputs_dir:
        say(f"wrote the model's inputs under {inputs_dir}")


def check_inputs(directory: Path, invert: str, fit: str) -> None:
    """The directory can be listed and the conversion's modes exist (ScoreError)."""
    if storage.is_remote(directory):
        pass  # no objects under a prefix is an empty inbox: a bucket has no empty directories
    elif not directory.is_dir():
        raise ScoreError(
            f"{directory}: no such directory"
            if not directory.exists()
            else f"{directory}: not a directory"
        )
    try:
        if not storage.is_remote(directory):
            os.scandir(directory).close()
    except OSError as e:
        raise ScoreError(f"{directory}: cannot list it ({e.strerror})") from None
    if invert not in images.INVERT_MODES:
        raise ScoreError(f"--invert must be one of {', '.join(images.INVERT_MODES)}")
    if fit not in images.FIT_MODES:
        raise ScoreError(f"--fit must be one of {', '.join(images.FIT_MODES)}")


def check_preview(path: Path, count: int) -> preview.ContactSheet:
    if path.suffix.lower() != ".png":
        raise ScoreError(f"--preview {path}: must end in .png")
    if not path.parent.is_dir():
        raise ScoreError(f"--preview {path}: directory {path.parent} does not exist")
    try:
        # Tried, not asked: os.access says yes to /proc and to a read-only mount.
        files.check_writable(path.parent)
    except OSError as e:
        raise ScoreError(
            f"--preview {path}: cannot write there ({e.strerror or e}); name another .png file"
        ) from None
    if path.is_dir():
        raise ScoreError(f"--preview {path}: is a directory; name a .png file")
    if count < 1:
        raise ScoreError(f"--preview-count must be at least 1, got {count}")
    return preview.ContactSheet(path, count)


def check_save_inputs(path: Path, directory: Path) -> Path:
    if storage.inside(directory, path):
        raise ScoreError(
            f"--save-inputs {path}: is inside the scored directory; "
            f"name a directory outside {directory}"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ScoreError(f"--save-inputs {path}: cannot create it ({e.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ScoreError(f"--save-inputs {path}: not writable; name another directory")
    return path


def observer(
    sheet: preview.ContactSheet | None, inputs_dir: Path | None, class_names: list[str]
) -> Callable | None:
    """What each scored batch also feeds: the contact sheet and the saved inputs."""
    if sheet is None and inputs_dir is None:
        return None

    def seen(
        paths: list[str], errors: list, x: np.ndarray, probs: np.ndarray, unsure: np.ndarray
    ) -> None:
        scored = [p for p, e in zip(paths, errors) if e is None]
        if sheet and not sheet.full:
            sheet.add(scored, x, class_names, probs, unsure)
        if inputs_dir:
            try:
                preview.save_inputs(inputs_dir, scored, x)
            except OSError as e:
                raise RunError(
                    f"--save-inputs {inputs_dir}: writing failed ({e.strerror})"
                ) from None

    return seen


def say(text: str) -> None:
    """A plain line on stdout (the summary)."""
    from rich.console import Console

    Console().print(text, highlight=False, soft_wrap=True, markup=False)


def budget_note(s: Summary) -> str:
    """` (--max-errors 5%: at most 10 of 200)` after the failed count, `over` when past it."""
    if s.max_errors is None:
        return ""
    return f" ({'over ' if s.over_budget else ''}{s.max_errors.describe(s.files)})"


def print_summary(s: Summary, fmt: str) -> None:
    """Files scored and failed, the rate, then images per predicted class (stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()

    say(
        f"scored {s.scored:,} of {s.files:,} image files; {s.failed:,} failed{budget_note(s)}; "
        f"{s.uncertain:,} uncertain; {s.images_per_second:,.0f} images/s over "
        f"{s.seconds:.2f}s of decoding and prediction ({s.total_seconds:.2f}s with "
        f"loading the model)"
    )
    if s.resumed:
        say(f"{count(s.resumed, 'file')} of them scored by an interrupted run (its parts)")
    if s.failed:
        say(f"failed files have the reason in the error column of {s.out}, e.g.")
        for path, error in s.first_errors:
            say(f"  {path}: {error}")
    if s.ignored:
        say(f"ignored {count(s.ignored, 'file')} with other extensions")
    if s.linked_dirs:
        say(
            f"did not follow {count(s.linked_dirs, 'symlinked directory', 'symlinked directories')}"
        )
    table = Table(title="predictions per class")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("%", justify="right")
    for name, n in s.per_class.items():
        table.add_row(name, f"{n:,}", f"{100 * n / s.scored:.1f}" if s.scored else "-")
    console.print(table)
    say(f"wrote {s.out} ({fmt.upper()}, {s.files:,} rows) with model {s.model}")
