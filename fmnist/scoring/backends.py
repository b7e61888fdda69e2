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
import threading
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from fmnist.core import storage
from fmnist.core.errors import DecoderDied, RunError, ScoreError
from fmnist.core.export import ExportMetadata
from fmnist.core.tables import count
from fmnist.scoring import images
from fmnist.scoring.savedmodel import Model, load_model

MAX_CHUNK = 256  # files per decoder job: big enough to amortise the IPC
# Seconds of decoding a job aims at: progress moves and Ctrl-C acts within about that,
# whether a file is a 28x28 PNG (full chunks) or a 12-megapixel photo (one per job).
CHUNK_SECONDS = 0.25
SIGNAL = "signal_"  # Ray Data column prefix of the `uncertain` signals
# What each predictor actor and each decoder task asks Ray for. Together they fit one
# CPU, so a one-CPU node runs an actor beside a decoder, and a node of N CPUs runs N
# decoders (N < 99) with the actor's small share of work on top: predicting is ~7 us an
# image against ~50 us to decode (tests/benchmarks/bench_ray_resources.py).
ACTOR_CPUS = 0.01
DECODER_CPUS = 1 - ACTOR_CPUS
# Seconds between a decoder task's reports of files decoded, for the progress line.
REPORT_SECONDS = 0.5
# Threads that outlive a run parked on a condition, never calling Ray again: not
# waited for before ray.shutdown() (Ray Data's block prefetcher).
PARKED_THREADS = ("Prefetcher",)
SETTLE_SECONDS = 10.0  # the most OnRay.__exit__ waits for threads still in Ray

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
            """The first `batch_size` files held (all at the end): batches begin at
            multiples of it in the walk's order, whatever the decoders' job sizes, so a
            run resumed from its parts calls the model on the same images (a
            probability's last bits depend on the call's size)."""
            n = min(batch_size, len(paths))
            ok = sum(e is None for e in errors[:n])
            x = np.concatenate(decoded) if decoded else np.empty((0, 28, 28), np.uint8)
            probs, signals = predict(model, x[:ok], batch_size)
            out = (paths[:n], errors[:n], x[:ok], probs, signals)
            del paths[:n], errors[:n]
            decoded[:] = [x[ok:]] if ok < len(x) else []
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
                while len(paths) >= batch_size:
                    yield batch()
            while paths:
                yield batch()
        except BrokenProcessPool:
            self.broken = True
            raise DecoderDied(
                "a decoder process died (killed, perhaps for memory); "
                "--out was not written: run again, with fewer --decoders if "
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

    def chunks(self, entries: Iterable) -> Iterator[Entries]:
        """`entries` in order (a list, or the walk itself), cut at the size current when
        each chunk is taken (the generator is read as jobs are submitted, so later
        chunks follow what was seen)."""
        from itertools import islice

        remaining = iter(entries)
        while chunk := list(islice(remaining, self.size)):
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
        try:
            check_fits(self.address or "the embedded Ray", ray.nodes())
        except ScoreError:
            ray.shutdown()
            raise
        # Ray Data logs to the console at INFO (and warns that we turned its progress
        # bars off: ours is the one on screen); a scoring run's stderr is for errors.
        # Ray Data reads this each time it sets up its loggers; set it to see them.
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows come back in path order
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        self.threads = set(threading.enumerate())
        return self

    def __exit__(self, *exc):
        import ray

        # A thread still inside Ray when ray.shutdown() runs ends the whole process with
        # exit code 1 ("The core worker has already been shutdown"), and one that calls
        # Ray after it starts a new local Ray. Ray Data's executor and our progress relay
        # end within their own joins' timeouts on an idle machine, not always on a busy
        # one (an interrupted run exited 1 instead of 143 in CI: docs/performance.md).
        settle(self.threads, SETTLE_SECONDS)
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
        # Decoder tasks report the files they decode to a small actor as they go; a
        # thread here passes that on: Ray Data hands back rows only a batch at a time,
        # which with big photos can be minutes apart.
        tally = ray.remote(num_cpus=0)(Tally).remote()
        dataset = self.dataset(
            entries, root, model, invert=invert, fit=fit, batch_size=batch_size, tally=tally
        )
        stop = threading.Event()
        relay = threading.Thread(
            target=relay_progress, args=(tally, on_decoded, stop), name="ray-progress", daemon=True
        )
        relay.start()
        # Closed in `finally`, as Ray Data asks of an iterator held by name: its executor
        # stops here, not whenever the garbage collector gets to it.
        rows = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            for batch in rows:
                ok = batch["error"] == ""
                yield (
                    batch["path"].tolist(),
                    [e or None for e in batch["error"].tolist()],
                    batch["image"][ok],
                    batch["probabilities"][ok],
                    {k[len(SIGNAL) :]: v[ok] for k, v in batch.items() if k.startswith(SIGNAL)},
                )
        except ray.exceptions.RayError as e:
            raise RunError(f"Ray Data failed: {images.describe(e)}") from None
        finally:
            rows.close()  # stops Ray Data's executor
            stop.set()
            relay.join(timeout=1.0)  # progress only: an interrupted run does not wait
            try:
                ray.kill(tally)  # a relay still waiting on the tally gets an error now, and ends
            except (ray.exceptions.RayError, ConnectionError, ValueError):  # the cluster is gone
                pass

    def dataset(
        self,
        entries: Entries,
        root: Path,
        model: Model,
        *,
        invert: str,
        fit: str,
        batch_size: int,
        tally=None,
    ):
        """paths -> (Ray tasks) decoded images -> (a pool of model actors) probabilities.

        Decoding is where the time goes (~50 us an image against ~7 us to predict), so
        it fans out as tasks over every CPU while a few actors, each loading the
        SavedModel once, predict. The actors ask for a sliver of a CPU (ACTOR_CPUS): they
        mostly wait for decoded batches; and remote arguments different from the tasks'
        keep Ray Data from fusing decoding into the actors (which would put a TensorFlow
        runtime on every CPU). Blocks of at most a chunk, and at least four per CPU: a
        few hundred big photos still spread over every decoder."""
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 1))
        rows = [{"path": p, "error": e or ""} for p, e in entries]
        chunk = chunk_size(batch_size)
        blocks = max(-(-len(rows) // chunk), min(len(rows), 4 * cpus))
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map_batches(
            decode_batch,
            fn_kwargs={"root": storage.uri(root), "invert": invert, "fit": fit, "tally": tally},
            batch_size=chunk,
            batch_format="numpy",
            num_cpus=DECODER_CPUS,
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
            num_cpus=ACTOR_CPUS,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus // 8)),
            # Ray Data keeps a predictor's constructor in the object store, where an actor
            # restart cannot rely on it (ray#53727); with restarts on, Ray logs an error
            # line on every run (ray#57733). A lost predictor fails the run (exit 1,
            # nothing written) instead of a restart that may not work.
            max_restarts=0,
        )


def settle(before: set[threading.Thread], seconds: float) -> list[str]:
    """Wait up to `seconds` in all for the threads started since `before` (but the
    PARKED_THREADS) to end; the names of those still running."""
    deadline = time.monotonic() + seconds
    left = []
    for t in threading.enumerate():
        if t in before or t is threading.current_thread() or t.name in PARKED_THREADS:
            continue
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            left.append(t.name)
    return left


def check_fits(where: str, nodes: list[dict]) -> None:
    """ScoreError, at once, when no alive node can hold a decoder task and a predictor
    actor: Ray would otherwise wait for resources that never come, without a word."""
    alive = [n for n in nodes if n.get("Alive")]
    cpus = [n.get("Resources", {}).get("CPU", 0) for n in alive]
    if max(cpus, default=0) < ACTOR_CPUS + DECODER_CPUS:
        raise ScoreError(
            f"the Ray cluster at '{where}' has no node with a CPU to score on "
            f"({count(len(alive), 'node')}, {sum(cpus):g} CPUs): score --ray needs at least "
            f"one CPU for its decoders and model; add a node with CPUs (`ray start "
            f"--address HEAD:PORT --num-cpus 1` or more)"
        )


class Tally:
    """Ray actor: files decoded (and failed) since the driver last asked."""

    def __init__(self):
        self.files = self.failed = 0

    def add(self, files: int, failed: int) -> None:
        self.files += files
        self.failed += failed

    def take(self) -> tuple[int, int]:
        out, self.files, self.failed = (self.files, self.failed), 0, 0
        return out


def relay_progress(tally, on_decoded: OnDecoded, stop: threading.Event) -> None:
    """Pass the decoders' reports on to `on_decoded` until `stop`, then the last ones."""
    import ray

    while True:
        stopping = stop.wait(REPORT_SECONDS)
        try:
            files, failed = ray.get(tally.take.remote(), timeout=10)
        except (ray.exceptions.RayError, ConnectionError):  # the run's own error says why
            return
        if files or failed:
            on_decoded(files, failed)
        if stopping:
            return


def decode_batch(batch: dict, root: str, invert: str, fit: str, tally=None) -> dict:
    """Ray Data task: paths (and walk errors) -> decoded images, one row per file. It
    decodes in chunks of about CHUNK_SECONDS and tells `tally` what it decoded every
    REPORT_SECONDS and at its end."""
    items = [(p, e or None) for p, e in zip(batch["path"].tolist(), batch["error"].tolist())]
    parts, errs = [], []
    sizer = ChunkSizer(len(items))
    reported, unreported = time.monotonic(), [0, 0]
    for chunk in sizer.chunks(items):
        x, chunk_errs, seconds = decode_timed(root, chunk, invert, fit)
        sizer.observe(len(chunk), seconds)
        parts.append(x)
        errs.extend(chunk_errs)
        unreported[0] += len(chunk)
        unreported[1] += len(chunk) - len(x)
        if tally is not None and time.monotonic() - reported >= REPORT_SECONDS:
            tally.add.remote(*unreported)
            reported, unreported = time.monotonic(), [0, 0]
    if tally is not None and unreported[0]:
        tally.add.remote(*unreported)
    x = np.concatenate(parts) if parts else np.empty((0, images.SIZE, images.SIZE), np.uint8)
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
