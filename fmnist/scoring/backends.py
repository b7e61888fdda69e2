"""How `score` turns files into predictions: on this machine or on a Ray cluster.

Both backends take the walked entries and yield the same batches,

    (paths, errors, images, probabilities, signals)

in path order, where `images`, `probabilities` and each of `signals` ({name: [N]}, the
`uncertain` signals the export returns; none for an older export) have a row per path
without an error; score.py writes them. A new way to run is one class here with `batches`, entered as a
context manager (it owns its processes or its Ray session).

Locally, decoding runs in a pool of processes (measured faster than threads: decoding a
28x28 PNG is mostly Python code in Pillow, which holds the GIL) while this process runs
the model. With Ray, Ray Data does the same on a cluster: tasks read and decode, a pool
of actors holding the model predicts, and the rows come back in order.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from fmnist.core import storage
from fmnist.core.errors import DecoderDied, RunError, ScoreError
from fmnist.core.export import ExportMetadata
from fmnist.scoring import images
from fmnist.scoring.savedmodel import Model, load_model

MAX_CHUNK = 256  # files per decoder job: big enough to amortise the IPC
# Seconds of decoding a job aims at: progress moves and Ctrl-C acts within about that,
# whether a file is a 28x28 PNG (full chunks) or a 12-megapixel photo (one per job).
CHUNK_SECONDS = 0.25
SIGNAL = "signal_"  # Ray Data column prefix of the `uncertain` signals

Batch = tuple[list[str], list, np.ndarray, np.ndarray, dict]
Entries = list[tuple[str, "str | None"]]
# Called as files are decoded, before their batch is complete: (files, failed).
OnDecoded = Callable[[int, int], None]


def predict(model: Model, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, dict]:
    """Probabilities and signals of `x`, `batch_size` images per model call."""
    if not len(x):
        return np.empty((0, 10), np.float32), {}
    parts = [model.predict_all(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return (
        np.concatenate([p for p, _ in parts]),
        {k: np.concatenate([s[k] for _, s in parts]) for k in parts[0][1]},
    )


def chunk_size(batch_size: int) -> int:
    # A divisor-friendly chunk: four chunks make one full batch of 1024.
    return max(1, min(MAX_CHUNK, batch_size // 4))


# -----------------------------------------------------------------------------
# On this machine: a pool of decoders feeding this process's model


def default_decoders() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
    except AttributeError:
        return os.cpu_count() or 1


class Local:
    """A pool of `workers` decoder processes (or threads), started at once: they boot
    while TensorFlow imports in this process."""

    def __init__(self, workers: int | None = None, kind: str = "process"):
        import multiprocessing

        self.workers = workers or default_decoders()
        self.pool = decoder_pool(kind, self.workers)
        before = set(multiprocessing.active_children())
        for _ in range(self.workers):
            self.pool.submit(int)
        # The decoder processes, to see one die even when the pool does not notice.
        self.processes = [p for p in multiprocessing.active_children() if p not in before]
        self.broken = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.broken:
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        # A decoder killed while it wrote its result can leave the pool's manager thread
        # reading half a message for ever: stop the decoders and give the shutdown a few
        # seconds; if it does not finish, the process must leave without it.
        import threading

        for p in self.processes:
            p.kill()
        closing = threading.Thread(
            target=self.pool.shutdown, daemon=True, kwargs={"wait": True, "cancel_futures": True}
        )
        closing.start()
        closing.join(5.0)
        if isinstance(exc, DecoderDied):
            exc.pool_stuck = closing.is_alive()

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.processes)

    def batches(
        self,
        root: Path,
        entries: Entries,
        model: Model,
        *,
        invert: str,
        fit: str,
        batch_size: int,
        on_decoded: OnDecoded = lambda files, failed: None,
    ) -> Iterator[Batch]:
        from concurrent.futures.process import BrokenProcessPool

        paths: list[str] = []
        errors: list[str | None] = []
        decoded: list[np.ndarray] = []

        def batch() -> Batch:
            x = np.concatenate(decoded) if decoded else np.empty((0, 28, 28), np.uint8)
            probs, signals = predict(model, x, batch_size)
            out = (list(paths), list(errors), x, probs, signals)
            paths.clear()
            errors.clear()
            decoded.clear()
            return out

        sizer = ChunkSizer(chunk_size(batch_size))
        jobs = ((str(root), chunk, invert, fit) for chunk in sizer.chunks(entries))
        try:
            for (_, chunk, *_), (x, errs, seconds) in ordered(
                self.pool, decode_timed, jobs, 4 * self.workers, self.alive
            ):
                sizer.observe(len(chunk), seconds)
                paths.extend(rel for rel, _ in chunk)
                errors.extend(errs)
                decoded.append(x)
                on_decoded(len(chunk), len(chunk) - len(x))
                if len(paths) >= batch_size:
                    yield batch()
            if paths:
                yield batch()
        except BrokenProcessPool:
            self.broken = True
            raise DecoderDied(
                "a decoder process died (killed, perhaps for memory); "
                "nothing was written: run again, with fewer --decoders if "
                "memory is short"
            ) from None


class ChunkSizer:
    """Files per decoder job, from the decoding time seen so far: about CHUNK_SECONDS a
    job, between 1 and `most` files. It starts small, so the first big photos do not
    come in a job of hundreds."""

    def __init__(self, most: int, first: int = 4):
        self.most, self.size = most, min(first, most)
        self.per_file: float | None = None

    def observe(self, files: int, seconds: float) -> None:
        if files:
            now = seconds / files
            self.per_file = now if self.per_file is None else 0.5 * (self.per_file + now)
            self.size = max(1, min(self.most, int(CHUNK_SECONDS / max(self.per_file, 1e-7))))

    def chunks(self, entries: Entries) -> Iterator[Entries]:
        """`entries` in order, cut at the size current when each chunk is taken (the
        generator is read as jobs are submitted, so later chunks follow what was seen)."""
        i = 0
        while i < len(entries):
            chunk = entries[i : i + self.size]
            i += len(chunk)
            yield chunk


def decode_timed(root: str, chunk, invert: str, fit: str):
    """images.decode_many, and the seconds it took (a decoder job)."""
    started = time.perf_counter()
    x, errs = images.decode_many(root, chunk, invert, fit)
    return x, errs, time.perf_counter() - started


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
    return cf.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_decoder_init
    )


def _decoder_init() -> None:
    # Ctrl-C goes to the whole process group; the parent handles it and stops the pool,
    # which lets the decoders finish their chunk and exit, instead of each printing a
    # traceback or dying into a "decoder died" error. SIGTERM keeps its default: when
    # one decoder dies (the OOM killer), the pool terminates the others with it, and a
    # decoder ignoring it hung the parent forever (Python 3.11, tests/test_score.py).
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered(
    pool, fn, jobs: Iterable[tuple], ahead: int, alive: Callable[[], bool] = lambda: True
) -> Iterator[tuple]:
    """(job, fn(*job)) in job order, with at most `ahead` jobs submitted and not yet
    consumed. (Executor.map submits every job up front: memory would grow with the
    size of the directory.) While waiting, `alive()` is asked every half second: a
    decoder killed mid-write is never noticed by the pool itself (BrokenProcessPool
    then comes from here)."""
    from concurrent.futures import TimeoutError as Timeout
    from concurrent.futures.process import BrokenProcessPool

    def result(future):
        while True:
            try:
                return future.result(timeout=0.5)
            except Timeout:
                if not alive():
                    raise BrokenProcessPool("a decoder process died") from None

    window: deque = deque()
    for job in jobs:
        window.append((job, pool.submit(fn, *job)))
        if len(window) >= ahead:
            job0, future = window.popleft()
            yield job0, result(future)
    while window:
        job0, future = window.popleft()
        yield job0, result(future)


# -----------------------------------------------------------------------------
# On a Ray cluster, with Ray Data


class OnRay:
    """Connected to the cluster at `address` (or an embedded local Ray) while entered."""

    def __init__(self, address: str | None, decoders: int | None = None):
        self.address, self.decoders = address, decoders

    def __enter__(self):
        import signal

        import ray

        from fmnist.core.cluster import ConnectError, connect

        if (self.address or "").startswith("ray://"):
            # Ray Data needs a driver on the cluster; through Ray Client it fails deep
            # inside with a traceback (ray#42739).
            raise ScoreError(
                f"score --ray cannot run through Ray Client ('{self.address}'): "
                f"Ray Data needs a driver on the cluster; run the command there "
                f"with `ray job submit --address http://HEAD:8265 -- fmnist-job "
                f"score ... --ray`, or give the GCS address (HEAD:6379)"
            )
        # ray.init replaces the SIGTERM handler with Ray's own, which aborts the process:
        # keep the caller's (the CLI cleans up and exits 143).
        on_sigterm = signal.getsignal(signal.SIGTERM)
        try:
            connect(self.address)
        except ConnectError as e:
            raise ScoreError(str(e)) from None
        finally:
            if on_sigterm is not None:  # None: a handler not set from Python
                signal.signal(signal.SIGTERM, on_sigterm)
        # Ray Data logs to the console at INFO (and warns that we turned its progress
        # bars off: ours is the one on screen); a scoring run's stderr is for errors.
        # Ray Data reads this each time it sets up its loggers; set it to see them.
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows come back in path order
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        return self

    def __exit__(self, *exc):
        import ray

        ray.shutdown()

    def batches(
        self,
        root: Path,
        entries: Entries,
        model: Model,
        *,
        invert: str,
        fit: str,
        batch_size: int,
        on_decoded: OnDecoded = lambda files, failed: None,
    ) -> Iterator[Batch]:
        import ray

        if not entries:
            return
        dataset = self.dataset(entries, root, model, invert=invert, fit=fit, batch_size=batch_size)
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                ok = batch["error"] == ""
                on_decoded(len(ok), int((~ok).sum()))
                yield (
                    batch["path"].tolist(),
                    [e or None for e in batch["error"].tolist()],
                    batch["image"][ok],
                    batch["probabilities"][ok],
                    {k[len(SIGNAL) :]: v[ok] for k, v in batch.items() if k.startswith(SIGNAL)},
                )
        except ray.exceptions.RayError as e:
            raise RunError(f"Ray Data failed: {images.describe(e)}") from None

    def dataset(
        self, entries: Entries, root: Path, model: Model, *, invert: str, fit: str, batch_size: int
    ):
        """paths -> (Ray tasks) decoded images -> (a pool of model actors) probabilities.

        Decoding is where the time goes (~50 us an image against ~7 us to predict), so
        it fans out as tasks over every CPU while a few actors, each loading the
        SavedModel once, predict. The actors ask for half a CPU: they mostly wait for
        decoded batches, and resources different from the tasks' also keep Ray Data from
        fusing decoding into the actors (which would put a TensorFlow runtime on every
        CPU)."""
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 1))
        rows = [{"path": p, "error": e or ""} for p, e in entries]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // batch_size)))
        ds = ds.map_batches(
            decode_batch,
            fn_kwargs={"root": storage.uri(root), "invert": invert, "fit": fit},
            batch_size=chunk_size(batch_size),
            batch_format="numpy",
            num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=self.decoders) if self.decoders else None,
        )
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for max_restarts (below) and warns that the
            # keyword route goes away in 2.64: revisit with that upgrade.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return self._predict(ds, model, batch_size, cpus)

    @staticmethod
    def _predict(ds, model: Model, batch_size: int, cpus: int):
        import ray

        return ds.map_batches(
            Predictor,
            fn_constructor_kwargs={
                "version": storage.uri(model.directory),  # each node reads it (or downloads it)
                "metadata": model.metadata,
            },
            batch_size=batch_size,
            batch_format="numpy",
            num_cpus=0.5,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus // 8)),
            # Ray Data keeps a predictor's constructor in the object store, where an actor
            # restart cannot rely on it (ray#53727); with restarts on, Ray logs an error
            # line on every run (ray#57733). A lost predictor fails the run (exit 1,
            # nothing written) instead of a restart that may not work.
            max_restarts=0,
        )


def decode_batch(batch: dict, root: str, invert: str, fit: str) -> dict:
    """Ray Data task: paths (and walk errors) -> decoded images, one row per file."""
    items = [(p, e or None) for p, e in zip(batch["path"].tolist(), batch["error"].tolist())]
    x, errs = images.decode_many(root, items, invert, fit)
    full = np.zeros((len(items), images.SIZE, images.SIZE), np.uint8)
    ok = np.array([e is None for e in errs], bool)
    full[ok] = x
    return {
        "path": batch["path"],
        "error": np.array([e or "" for e in errs], dtype=object),
        "image": full,
    }


class Predictor:
    """Ray Data actor: loads the SavedModel once, then predicts batch after batch."""

    def __init__(self, version: str, metadata: ExportMetadata):
        from fmnist.core import runtime

        runtime.configure_tensorflow(1)  # one CPU per actor: do not spawn a thread per core
        self.model = load_model(storage.location(version, "--model"), metadata)

    def __call__(self, batch: dict) -> dict:
        ok = batch["error"] == ""
        probs = np.zeros((len(ok), 10), np.float32)
        signals = {SIGNAL + k: np.zeros(len(ok), np.float32) for k in self.model.signals}
        if ok.any():
            probs[ok], found = self.model.predict_all(batch["image"][ok])
            for k, v in found.items():
                signals[SIGNAL + k][ok] = v
        return {
            "path": batch["path"],
            "error": batch["error"],
            "probabilities": probs,
            "image": batch["image"],
            **signals,
        }
