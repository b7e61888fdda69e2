"""fmnist-job score: one prediction per image file under a directory, streamed to a file.

    walk the directory (sorted, lazily) -> decode in parallel (fmnist.images)
    -> predict in batches with the SavedModel's serving signature -> write rows
    to a temporary file beside --out -> rename it into place at the end

Locally, decoding runs in a pool of processes (measured faster than threads: decoding a
28x28 PNG is mostly Python code in Pillow, which holds the GIL) while this process runs
the model and writes rows. With --ray, Ray Data does the same on a cluster: tasks read
and decode, a pool of actors holding the model predicts, and the rows come back in order.

Memory stays flat however many files there are: at most a few chunks of decoded images
are in flight and rows are written batch by batch (only one directory's listing at a
time is held, to sort it; --ray also holds the list of paths it hands to Ray Data).
A bad file never stops the run: it becomes a row with `error` set. Only what makes the
whole run pointless (no directory, no usable model, an output that cannot be written)
stops it, before any scoring, with exit code 2.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from fmnist import export, files, images, preview, quiet_native_stderr, versions

COLUMNS = ("path", "label", "class_name", "confidence", "top1_class", "top1_prob",
           "top2_class", "top2_prob", "top3_class", "top3_prob", "error")
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
MAX_CHUNK = 256          # files per decoder job: big enough to amortise the IPC
PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when not on a terminal


class ScoreError(Exception):
    """The run cannot start: missing directory, unusable model or output (exit 2)."""


class RunError(Exception):
    """The run broke after it started (output disk full, decoder or Ray failure; exit 1)."""


# -----------------------------------------------------------------------------
# 1. The directory walk

@dataclass
class WalkStats:
    ignored: int = 0        # files whose extension is not an image format's
    linked_dirs: int = 0    # symlinked directories, never followed


def walk(root: Path, stats: WalkStats | None = None) -> Iterator[tuple[str, str | None]]:
    """(path relative to root in POSIX form, error or None) for every file with an image
    extension, in sorted order: each directory's entries sorted by name, depth first
    (the same as sorting the paths component by component).

    Symlinks: a link to a file inside the tree is scored; a link that points outside
    the tree, or nowhere, is not read and becomes an error row. Symlinked directories
    are never descended into (no loops, no escaping the tree; a link to a directory
    inside the tree would only score its files twice) and are counted."""
    stats = stats if stats is not None else WalkStats()
    real_root = os.path.realpath(root)
    stack: list[tuple[str, Iterator[os.DirEntry]]] = [("", iter(_listing(root)))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            try:
                stack.append((rel + "/", iter(_listing(entry.path))))
            except OSError as e:
                yield rel + "/", f"cannot list directory: {images.describe(e)}"
            continue
        if entry.is_symlink() and entry.is_dir():
            stats.linked_dirs += 1
            continue
        if os.path.splitext(entry.name)[1].lower() not in images.EXTENSIONS:
            stats.ignored += 1
            continue
        yield rel, _file_error(entry, real_root)


def _listing(directory) -> list[os.DirEntry]:
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def _file_error(entry: os.DirEntry, real_root: str) -> str | None:
    """Why this entry cannot be read as an image file, or None. Uses the type scandir
    already knows; only symlinks cost a realpath."""
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            return "broken symlink"
        if os.path.commonpath([real_root, target]) != real_root:
            return "symlink to a file outside the scored directory (not read)"
        return None if os.path.isfile(target) else "symlink to something that is not a file"
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file (a FIFO, socket or device)"
    return None


def chunked(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# -----------------------------------------------------------------------------
# 2. The model

@dataclass
class Model:
    directory: Path
    metadata: dict
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 [N, 28, 28] -> float32 [N, 10]
    keepalive: object = field(default=None, repr=False)  # the loaded SavedModel object

    @property
    def class_names(self) -> list[str]:
        return self.metadata["class_names"]


def resolve_model(path: Path) -> Path:
    """--model is a version directory, or the export base: its `stable` version (labels
    in models.config, as TF Serving serves them), else its newest."""
    if (path / "saved_model.pb").is_file():
        return path
    if not path.exists():
        raise ScoreError(f"--model {path}: no such directory; train and export a model "
                         f"first (fmnist-job train) or point --model at one")
    if not versions.disk_versions(path):
        raise ScoreError(f"--model {path}: not a SavedModel (no saved_model.pb) and no "
                         f"integer version directories with one under it")
    try:
        return path / str(versions.resolve(path)[0])
    except versions.VersionsError as e:
        raise ScoreError(f"--model: {e}") from None


def read_metadata(version: Path) -> dict:
    """fmnist.json written by the export: the class names are the model's own."""
    try:
        meta = json.loads((version / export.METADATA).read_text())
    except FileNotFoundError:
        raise ScoreError(f"--model {version}: no {export.METADATA} (class names); "
                         f"not exported by fmnist-job train") from None
    except (OSError, ValueError) as e:
        raise ScoreError(f"--model {version}: cannot read {export.METADATA}: "
                         f"{images.describe(e)}") from None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and len(names) == 10
            and all(isinstance(n, str) for n in names)):
        raise ScoreError(f"--model {version}: {export.METADATA} must list 10 class_names")
    return meta


def load_model(version: Path, metadata: dict, threads: int | None = None) -> Model:
    """Load with tf.saved_model.load (a graph and variables: nothing is unpickled) and
    check the serving signature is the one fmnist-job exports."""
    with quiet_native_stderr():
        # TensorFlow prints start-up lines (oneDNN, CUDA) straight to file descriptor 2,
        # before any logging setting applies; a scoring run's stderr is for its errors.
        import tensorflow as tf
        if threads:
            with contextlib.suppress(RuntimeError):  # already initialized in this process
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
        try:
            loaded = tf.saved_model.load(str(version))
        except Exception as e:  # noqa: BLE001 - any load failure means "not a usable model"
            raise ScoreError(f"--model {version}: cannot load the SavedModel: "
                             f"{images.describe(e)}") from None
        signature = _check_signature(loaded, version)
        # The first call initializes the runtime (and prints more); do it here.
        signature(**{export.INPUT_KEY: tf.zeros([1, 28, 28], tf.uint8)})

    def predict(x: np.ndarray) -> np.ndarray:
        out = signature(**{export.INPUT_KEY: tf.convert_to_tensor(x, tf.uint8)})
        return out[export.OUTPUT_KEY].numpy()

    # The signature reads the loaded object's variables: keep that object alive with it.
    return Model(version, metadata, predict, keepalive=loaded)


def _check_signature(loaded, version: Path):
    import tensorflow as tf

    signature = getattr(loaded, "signatures", {}).get(export.SIGNATURE)
    if signature is None:
        raise ScoreError(f"--model {version}: no '{export.SIGNATURE}' signature")
    _, inputs = signature.structured_input_signature
    spec = inputs.get(export.INPUT_KEY)
    if (len(inputs) != 1 or spec is None or spec.dtype != tf.uint8
            or spec.shape.rank != 3 or spec.shape[1:] != [28, 28]):
        raise ScoreError(f"--model {version}: signature '{export.SIGNATURE}' must take only "
                         f"'{export.INPUT_KEY}': uint8 [N, 28, 28]; it takes {inputs}")
    out = signature.structured_outputs.get(export.OUTPUT_KEY)
    if out is None or out.dtype != tf.float32 or out.shape.rank != 2 or out.shape[1] != 10:
        raise ScoreError(f"--model {version}: signature '{export.SIGNATURE}' must return "
                         f"'{export.OUTPUT_KEY}': float32 [N, 10]")
    return signature


# -----------------------------------------------------------------------------
# 3. The output file: rows go to a temporary file beside --out, renamed at the end

class Output:
    """Creating it is the writability check: the temporary file exists before any
    scoring starts. `commit` renames it over --out; `discard` removes it, so a failed
    or interrupted run leaves any previous file at --out untouched."""

    def __init__(self, path: Path):
        self.path = path
        self.format = OUTPUT_FORMATS.get(path.suffix.lower())
        if self.format is None:
            raise ScoreError(f"--out {path}: unknown extension '{path.suffix}'; "
                             f"use .csv or .jsonl")
        if path.is_dir():
            raise ScoreError(f"--out {path}: is a directory; name a .csv or .jsonl file")
        parent = path.parent
        if not parent.is_dir():
            raise ScoreError(f"--out {path}: directory {parent} does not exist")
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        except OSError as e:
            raise ScoreError(f"--out {path}: cannot write in {parent} ({e.strerror})") from None
        # Undecodable bytes in file names (surrogates) are written as \udcXX escapes.
        self.file = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace",
                              newline="", buffering=1 << 20)
        self.rows = 0
        self.first_errors: list[tuple[str, str]] = []  # a few, for the summary
        if self.format == "csv":
            self.csv = csv.writer(self.file, lineterminator="\n")
            self.csv.writerow(COLUMNS)

    def write(self, paths: list[str], errors: list[str | None], probs: np.ndarray,
              class_names: list[str]) -> np.ndarray:
        """Rows for one batch in order; `probs` has a row per path without an error.
        Returns the labels written."""
        top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
        top_p = np.take_along_axis(probs, top, axis=1).tolist()
        top = top.tolist()
        k = 0
        try:
            for path, error in zip(paths, errors):
                if error is None:
                    (a, b, c), (pa, pb, pc) = top[k], top_p[k]
                    k += 1
                    self._row(path, a, class_names, pa, b, pb, c, pc)
                else:
                    self._error_row(path, error)
                    if len(self.first_errors) < 3:
                        self.first_errors.append((path, error))
        except OSError as e:
            raise RunError(f"--out {self.path}: writing failed ({e.strerror})") from None
        self.rows += len(paths)
        return np.asarray([t[0] for t in top], dtype=np.int64)

    def _row(self, path, a, names, pa, b, pb, c, pc):
        if self.format == "csv":
            self.csv.writerow((path, a, names[a], f"{pa:.6f}", names[a], f"{pa:.6f}",
                               names[b], f"{pb:.6f}", names[c], f"{pc:.6f}", ""))
        else:
            pa, pb, pc = round(pa, 6), round(pb, 6), round(pc, 6)
            self.file.write(json.dumps(dict(zip(COLUMNS, (
                path, a, names[a], pa, names[a], pa, names[b], pb, names[c], pc, None))),
                ensure_ascii=False) + "\n")

    def _error_row(self, path, error):
        if self.format == "csv":
            self.csv.writerow((path, "", "", "", "", "", "", "", "", "", error))
        else:
            row = dict.fromkeys(COLUMNS)
            row["path"], row["error"] = path, error
            self.file.write(json.dumps(row, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            os.fchmod(self.file.fileno(), files.default_mode(0o666))
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise RunError(f"--out {self.path}: cannot finish writing ({e.strerror})") from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


# -----------------------------------------------------------------------------
# 4. Progress: a rich bar on a terminal, a plain line every few seconds otherwise

def note(text: str) -> None:
    """A plain line on stderr (stdout is for the summary)."""
    from rich.console import Console
    Console(stderr=True).print(text, highlight=False, soft_wrap=True, markup=False)


class Progress:
    def __init__(self, total: int, enabled: bool = True):
        from rich.console import Console

        self.total, self.done, self.failed = total, 0, 0
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.started = self.last_line = time.monotonic()
        self.bar = None
        if enabled and self.console.is_terminal:
            from rich import progress as rp
            self.bar = rp.Progress(
                rp.TextColumn("scoring"), rp.BarColumn(), rp.MofNCompleteColumn(),
                rp.TextColumn("{task.fields[failed]} failed"),
                rp.TextColumn("{task.fields[rate]} images/s"),
                rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
                console=self.console, transient=True)
            self.task = self.bar.add_task("score", total=total, failed=0, rate="-")

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def advance(self, files: int, failed: int) -> None:
        self.done += files
        self.failed += failed
        if self.bar:
            self.bar.update(self.task, advance=files, failed=self.failed,
                            rate=f"{self.rate():,.0f}")
        elif self.enabled and time.monotonic() - self.last_line >= PLAIN_PROGRESS_EVERY:
            self.last_line = time.monotonic()
            pct = 100 * self.done / self.total if self.total else 100.0
            note(f"score: {self.done:,}/{self.total:,} files ({pct:.1f}%), "
                 f"{self.failed:,} failed, {self.rate():,.0f} images/s")


# -----------------------------------------------------------------------------
# 5. Local scoring: a pool of decoders feeding this process's model

def default_decoders() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
    except AttributeError:
        return os.cpu_count() or 1


def chunk_size(batch_size: int) -> int:
    # A divisor-friendly chunk: four chunks make one full batch of 1024.
    return max(1, min(MAX_CHUNK, batch_size // 4))


def decoder_pool(kind: str, workers: int):
    """A process pool (default) or a thread pool of `workers` decoders."""
    import concurrent.futures as cf
    import multiprocessing

    if kind == "thread":
        return cf.ThreadPoolExecutor(workers, thread_name_prefix="decode")
    if kind != "process":
        raise ValueError(f"decoder pool kind must be 'process' or 'thread', got {kind!r}")
    # spawn, not fork: this process has (or will have) TensorFlow's threads, and forking
    # a threaded process can deadlock the child.
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_decoder_init)


def _decoder_init() -> None:
    # Ctrl-C goes to the whole process group (and so may a SIGTERM); the parent handles
    # both and stops the pool, which lets the decoders finish their chunk and exit,
    # instead of each printing a traceback or dying into a "decoder died" error.
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def ordered(pool, fn, jobs: Iterable[tuple], ahead: int) -> Iterator[tuple]:
    """(job, fn(*job)) in job order, with at most `ahead` jobs submitted and not yet
    consumed. (Executor.map submits every job up front: memory would grow with the
    size of the directory.)"""
    window: deque = deque()
    for job in jobs:
        window.append((job, pool.submit(fn, *job)))
        if len(window) >= ahead:
            job0, future = window.popleft()
            yield job0, future.result()
    while window:
        job0, future = window.popleft()
        yield job0, future.result()


def score_local(root: Path, model: Model, output: Output, progress: Progress, *,
                stats: WalkStats, invert: str, fit: str, batch_size: int, pool,
                workers: int, seen: Callable | None = None) -> np.ndarray:
    """Returns the count of images per class."""
    from concurrent.futures.process import BrokenProcessPool

    counts = np.zeros(10, np.int64)
    paths: list[str] = []
    errors: list[str | None] = []
    decoded: list[np.ndarray] = []

    def flush():
        x = np.concatenate(decoded) if decoded else np.empty((0, 28, 28), np.uint8)
        probs = np.concatenate([model.predict(x[i:i + batch_size])
                                for i in range(0, len(x), batch_size)]) \
            if len(x) else np.empty((0, 10), np.float32)
        labels = output.write(paths, errors, probs, model.class_names)
        counts[:] += np.bincount(labels, minlength=10)
        if seen:
            seen(paths, errors, x, probs)
        progress.advance(len(paths), len(paths) - len(x))
        paths.clear()
        errors.clear()
        decoded.clear()

    jobs = ((str(root), chunk, invert, fit)
            for chunk in chunked(walk(root, stats), chunk_size(batch_size)))
    try:
        for (_, chunk, *_), (x, errs) in ordered(pool, images.decode_many, jobs, 4 * workers):
            paths.extend(rel for rel, _ in chunk)
            errors.extend(errs)
            decoded.append(x)
            if len(paths) >= batch_size:
                flush()
        flush()
    except BrokenProcessPool as e:
        raise RunError(f"a decoder process died ({e}); was it killed for memory?") from None
    return counts


# -----------------------------------------------------------------------------
# 6. Cluster scoring with Ray Data

def decode_batch(batch: dict, root: str, invert: str, fit: str) -> dict:
    """Ray Data task: paths (and walk errors) -> decoded images, one row per file."""
    items = [(p, e or None) for p, e in zip(batch["path"].tolist(), batch["error"].tolist())]
    x, errs = images.decode_many(root, items, invert, fit)
    full = np.zeros((len(items), images.SIZE, images.SIZE), np.uint8)
    ok = np.array([e is None for e in errs], bool)
    full[ok] = x
    return {"path": batch["path"], "error": np.array([e or "" for e in errs], dtype=object),
            "image": full}


class Predictor:
    """Ray Data actor: loads the SavedModel once, then predicts batch after batch."""

    def __init__(self, version: str, metadata: dict):
        from fmnist import train
        train.configure_tensorflow(1)  # one CPU per actor: do not spawn a thread per core
        self.model = load_model(Path(version), metadata)

    def __call__(self, batch: dict) -> dict:
        ok = batch["error"] == ""
        probs = np.zeros((len(ok), 10), np.float32)
        if ok.any():
            probs[ok] = self.model.predict(batch["image"][ok])
        return {"path": batch["path"], "error": batch["error"], "probabilities": probs,
                "image": batch["image"]}


@contextlib.contextmanager
def ray_session(address: str | None):
    """Connected to the cluster at `address` (or an embedded local Ray) for the block."""
    import ray

    from fmnist.sweep import ConnectError, connect

    import signal

    # ray.init replaces the SIGTERM handler with Ray's own, which aborts the process:
    # keep the caller's (the CLI cleans up and exits 143).
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        connect(address)
    except ConnectError as e:
        raise ScoreError(str(e)) from None
    finally:
        if on_sigterm is not None:  # None: a handler not set from Python
            signal.signal(signal.SIGTERM, on_sigterm)
    try:
        # Ray Data logs to the console at INFO (and warns that we turned its progress
        # bars off: ours is the one on screen); a scoring run's stderr is for errors.
        # Ray Data reads this each time it sets up its loggers; set it to see them.
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows come back in path order
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield
    finally:
        ray.shutdown()


def ray_dataset(entries: list[tuple[str, str | None]], root: Path, model: Model, *,
                invert: str, fit: str, batch_size: int, decoders: int | None):
    """paths -> (Ray tasks) decoded images -> (a pool of model actors) probabilities.

    Decoding is where the time goes (~50 us an image against ~7 us to predict), so it
    fans out as tasks over every CPU while a few actors, each loading the SavedModel
    once, predict. The actors ask for half a CPU: they mostly wait for decoded batches,
    and resources different from the tasks' also keep Ray Data from fusing decoding
    into the actors (which would put a TensorFlow runtime on every CPU)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    rows = [{"path": p, "error": e or ""} for p, e in entries]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // batch_size)))
    ds = ds.map_batches(
        decode_batch, fn_kwargs={"root": str(root.resolve()), "invert": invert, "fit": fit},
        batch_size=chunk_size(batch_size), batch_format="numpy", num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=decoders) if decoders else None)
    return ds.map_batches(
        Predictor, fn_constructor_kwargs={"version": str(model.directory.resolve()),
                                          "metadata": model.metadata},
        batch_size=batch_size, batch_format="numpy", num_cpus=0.5,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus // 8)))


def score_ray(dataset, model: Model, output: Output, progress: Progress,
              seen: Callable | None = None) -> np.ndarray:
    import ray

    counts = np.zeros(10, np.int64)
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            errors = [e or None for e in batch["error"].tolist()]
            ok = batch["error"] == ""
            labels = output.write(batch["path"].tolist(), errors, batch["probabilities"][ok],
                                  model.class_names)
            counts += np.bincount(labels, minlength=10)
            if seen:
                seen(batch["path"].tolist(), errors, batch["image"][ok],
                     batch["probabilities"][ok])
            progress.advance(len(errors), len(errors) - int(ok.sum()))
    except ray.exceptions.RayError as e:
        raise RunError(f"Ray Data failed: {images.describe(e)}") from None
    return counts


# -----------------------------------------------------------------------------
# 7. The command

@dataclass
class Summary:
    directory: Path
    model: Path
    out: Path
    files: int = 0
    failed: int = 0
    ignored: int = 0
    linked_dirs: int = 0
    seconds: float = 0.0
    per_class: dict = field(default_factory=dict)
    first_errors: list = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.files - self.failed

    @property
    def images_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0


def score(directory: Path, *, model: Path, out: Path, invert: str = "auto", fit: str = "auto",
          batch_size: int = 1024, decoders: int | None = None, use_ray: bool = False,
          address: str | None = None, pool: str = "process", show: bool = True,
          preview_to: Path | None = None, preview_count: int = 100,
          save_inputs: Path | None = None) -> Summary:
    """Score every image file under `directory` into `out`. Raises ScoreError before
    anything is scored; RunError if the run breaks later (no output is left then)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ScoreError(f"{directory}: no such directory" if not directory.exists()
                         else f"{directory}: not a directory")
    try:
        _listing(directory)
    except OSError as e:
        raise ScoreError(f"{directory}: cannot list it ({e.strerror})") from None
    if invert not in images.INVERT_MODES:
        raise ScoreError(f"--invert must be one of {', '.join(images.INVERT_MODES)}")
    if fit not in images.FIT_MODES:
        raise ScoreError(f"--fit must be one of {', '.join(images.FIT_MODES)}")
    version = resolve_model(Path(model))
    metadata = read_metadata(version)
    sheet = check_preview(Path(preview_to), preview_count) if preview_to else None
    inputs_dir = check_save_inputs(Path(save_inputs), directory) if save_inputs else None
    output = Output(Path(out))  # before the expensive part: fails fast if unwritable
    workers = decoders or default_decoders()
    try:
        with contextlib.ExitStack() as stack:
            if use_ray:
                stack.enter_context(ray_session(address))
            else:
                # Start the decoders first: they boot while TensorFlow imports here.
                executor = decoder_pool(pool, workers)
                stack.callback(executor.shutdown, wait=True, cancel_futures=True)
                for _ in range(workers):
                    executor.submit(int)
            net = load_model(version, metadata)
            seen = observer(sheet, inputs_dir, net.class_names)
            stats = WalkStats()
            if use_ray:
                entries = list(walk(directory, stats))
                total = len(entries)
            else:
                total = sum(1 for _ in walk(directory))  # for the bar; listing is cheap
            if show:
                note(f"score: {total:,} image files under {directory} with model {version}"
                     f"{versions.why_used(version)}")
            with Progress(total, enabled=show) as progress:
                started = time.monotonic()
                if use_ray:
                    counts = np.zeros(10, np.int64)
                    if entries:
                        dataset = ray_dataset(entries, directory, net, invert=invert, fit=fit,
                                              batch_size=batch_size, decoders=decoders)
                        counts = score_ray(dataset, net, output, progress, seen)
                else:
                    counts = score_local(directory, net, output, progress, stats=stats,
                                         invert=invert, fit=fit, batch_size=batch_size,
                                         pool=executor, workers=workers, seen=seen)
                seconds = time.monotonic() - started
            if sheet:
                try:
                    sheet.write()
                except OSError as e:
                    raise RunError(f"--preview {sheet.path}: writing failed "
                                   f"({e.strerror})") from None
        output.commit()
    except BaseException:
        output.discard()
        raise
    summary = Summary(directory, version, Path(out), files=progress.done,
                      failed=progress.failed, ignored=stats.ignored,
                      linked_dirs=stats.linked_dirs, seconds=seconds,
                      per_class={n: int(c) for n, c in zip(net.class_names, counts)},
                      first_errors=output.first_errors)
    if show:
        print_summary(summary, output.format)
        if sheet:
            say(f"wrote {sheet.path} (the first {len(sheet.tiles):,} inputs as the model "
                f"saw them)")
        if inputs_dir:
            say(f"wrote the model's inputs under {inputs_dir}")
    return summary


def check_preview(path: Path, count: int) -> preview.ContactSheet:
    if path.suffix.lower() != ".png":
        raise ScoreError(f"--preview {path}: must end in .png")
    if not path.parent.is_dir():
        raise ScoreError(f"--preview {path}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or path.is_dir():
        raise ScoreError(f"--preview {path}: cannot write there; name another .png file")
    if count < 1:
        raise ScoreError(f"--preview-count must be at least 1, got {count}")
    return preview.ContactSheet(path, count)


def check_save_inputs(path: Path, directory: Path) -> Path:
    real, scored = os.path.realpath(path), os.path.realpath(directory)
    if os.path.commonpath([real, scored]) == scored:
        raise ScoreError(f"--save-inputs {path}: is inside the scored directory; "
                         f"name a directory outside {directory}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ScoreError(f"--save-inputs {path}: cannot create it ({e.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ScoreError(f"--save-inputs {path}: not writable; name another directory")
    return path


def observer(sheet: preview.ContactSheet | None, inputs_dir: Path | None,
             class_names: list[str]) -> Callable | None:
    """What each scored batch also feeds: the contact sheet and the saved inputs."""
    if sheet is None and inputs_dir is None:
        return None

    def seen(paths: list[str], errors: list, x: np.ndarray, probs: np.ndarray) -> None:
        scored = [p for p, e in zip(paths, errors) if e is None]
        if sheet and not sheet.full:
            sheet.add(scored, x, class_names, probs)
        if inputs_dir:
            try:
                preview.save_inputs(inputs_dir, scored, x)
            except OSError as e:
                raise RunError(f"--save-inputs {inputs_dir}: writing failed "
                               f"({e.strerror})") from None
    return seen


def say(text: str) -> None:
    """A plain line on stdout (the summary)."""
    from rich.console import Console
    Console().print(text, highlight=False, soft_wrap=True, markup=False)


def print_summary(s: Summary, fmt: str) -> None:
    """Files scored and failed, the rate, then images per predicted class (stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()

    say(f"scored {s.scored:,} of {s.files:,} image files in {s.seconds:.2f}s "
        f"({s.images_per_second:,.0f} images/s); {s.failed:,} failed")
    if s.failed:
        say(f"failed files have the reason in the error column of {s.out}, e.g.")
        for path, error in s.first_errors:
            say(f"  {path}: {error}")
    if s.ignored:
        say(f"ignored {s.ignored:,} files with other extensions")
    if s.linked_dirs:
        say(f"did not follow {s.linked_dirs:,} symlinked directories")
    table = Table(title="predictions per class")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("%", justify="right")
    for name, n in s.per_class.items():
        table.add_row(name, f"{n:,}", f"{100 * n / s.scored:.1f}" if s.scored else "-")
    console.print(table)
    say(f"wrote {s.out} ({fmt.upper()}, {s.files:,} rows) with model {s.model}")
