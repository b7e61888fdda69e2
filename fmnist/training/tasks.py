"""The sweep's Ray tasks: train one variant, and build the export.

Both run in worker processes that import TensorFlow; the driver (fmnist/training/sweep.py)
never does. Ray retries a task (3 times) only when its process or node is lost; a
variant's own failure comes back as a failed result, and the sweep goes on.
"""

from __future__ import annotations

import asyncio
import platform
import socket
import tempfile
import time
from pathlib import Path

import ray

from fmnist.core import data, export, internals, runtime, storage
from fmnist.ops.results import VariantResult
from fmnist.training import calibrate, checkpoints, fit, savedmodel
from fmnist.training.variants import Variant


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def failed(variant: Variant, error: str, status: str = "failed", **extra) -> VariantResult:
    """The result of a variant that did not finish (`failed` or `interrupted`)."""
    return VariantResult(
        name=variant.name, config=variant.to_dict(), status=status, error=error, **extra
    )


def _train(
    variant: Variant,
    splits: data.Splits,
    events,
    cpus: float,
    checkpoint_dir: str,
    threads: int | None = None,
    until_epoch: int | None = None,
    teacher: Variant | None = None,
    taught=None,
    desk=None,
):
    """Train one variant; returns (result, weights, validation probabilities), the last two
    None for a failed variant or one trained only `until_epoch` (a rung: fit.fit_variant).
    A retry, or a promotion to the next rung, resumes from the last finished epoch in
    `checkpoint_dir`. Progress events go to the `events` queue, fire and forget.

    A student gets its `teacher` and what the teacher's task returned (`taught`: passed
    as the teacher task's ObjectRef, so Ray starts the student once the teacher has
    finished; a resumed run's finished teacher comes from its saved weights).

    With successive halving, `desk` (a RungDesk) is asked at each rung whether this
    process goes on training the variant (its promotion) or returns; each rung's
    result then counts the CPU-seconds since the one before."""
    entered, cpu_started = time.monotonic(), time.process_time()
    runtime.skip_optional_imports()
    runtime.batch_scheduling()
    device = runtime.configure_tensorflow(cpus, threads)
    setup_seconds = round(time.monotonic() - entered, 2)
    where = {
        "host": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "device": device,
    }

    def emit(ev):
        try:
            internals.ray_queue_put_async(events, {"variant": variant.name, **ev})
        except Exception:  # noqa: BLE001 - a lost queue must not fail the training
            pass

    if teacher is not None and taught[1] is None:
        return (
            failed(variant, f"teacher {teacher.name!r} failed: {taught[0].error}", **where),
            None,
            None,
        )
    emit({"kind": "start", **where})
    # runs/<run>/tensorboard/<variant>/, beside checkpoints/<variant>: `tensorboard
    # --logdir runs/` compares the variants of a run and the runs of several nights.
    tensorboard_dir = f"{checkpoint_dir.rsplit('/', 2)[0]}/tensorboard/{variant.name}"
    stretch_cpu = [cpu_started]  # where the current rung's CPU-seconds start

    def finish(result: VariantResult) -> VariantResult:
        import tensorflow as tf

        now = time.process_time()
        # The worker process runs one task at a time: its CPU time is this task's.
        result.cpu_seconds, stretch_cpu[0] = round(now - stretch_cpu[0], 2), now
        result.node_id, result.setup_seconds = where["node_id"], setup_seconds
        result.threads = tf.config.threading.get_intra_op_parallelism_threads()
        return result

    def go_on(until: int, result: VariantResult) -> int | None:
        return ray.get(desk.reached.remote(variant.name, until, finish(result)))

    bucket = None
    try:
        after_epoch = None
        if storage.is_uri(checkpoint_dir):  # a run directory in a bucket: local copies
            bucket = checkpoints.BucketCheckpoints(checkpoint_dir, tensorboard_dir)
            bucket.restore()
            checkpoint_dir, tensorboard_dir = map(
                str, (bucket.checkpoint_dir, bucket.tensorboard_dir)
            )
            after_epoch = bucket.commit
        fitted = fit.fit_variant(
            variant,
            splits,
            device=device,
            checkpoint_dir=checkpoint_dir,
            tensorboard_dir=tensorboard_dir,
            after_epoch=after_epoch,
            on_epoch=lambda epoch, logs: emit({"kind": "epoch", "epoch": epoch, **logs}),
            until_epoch=until_epoch,
            teacher=(teacher, taught[1]) if teacher is not None else None,
            go_on=go_on if desk is not None else None,
        )
    except Exception as e:  # noqa: BLE001 - any error of one variant is recorded, not raised
        cpu = round(time.process_time() - stretch_cpu[0], 2)
        return failed(variant, one_line(e), cpu_seconds=cpu, **where), None, None
    finally:
        if bucket is not None:
            bucket.close()
    return finish(fitted.result), fitted.weights, fitted.val_probabilities


# The GPU flavour's worker process exits after each task (max_calls=1, which .options()
# cannot set), so TensorFlow's hold on GPU memory (it never gives memory back) ends with
# the variant.
train_task = ray.remote(max_retries=3, retry_exceptions=False)(_train)
train_task_gpu = ray.remote(max_retries=3, retry_exceptions=False, max_calls=1)(_train)


class RungDesk:
    """Successive halving's meeting point of tasks and driver: a task at a rung reports
    its result and waits; the driver collects the reports (`reports`), decides with
    fmnist/training/asha.py and answers (`answer`): the epoch to go on to in the same
    process (this variant's promotion) or None (the task returns, its slot takes other
    work). An answer stands: a retried task that reaches the same rung again gets it
    without a new report. A Ray actor on the driver's node (no CPU reserved)."""

    def __init__(self):
        self.waiting: list[tuple] = []  # (name, rung epochs, result) not yet collected
        self.answers: dict[tuple[str, int], int | None] = {}
        self.answered: dict[tuple[str, int], asyncio.Event] = {}

    async def reached(self, name: str, until: int, result: VariantResult) -> int | None:
        key = (name, until)
        if key not in self.answers:
            self.answered.setdefault(key, asyncio.Event())
            self.waiting.append((name, until, result))
            await self.answered[key].wait()
        return self.answers[key]

    async def reports(self) -> list[tuple]:
        out, self.waiting = self.waiting, []
        return out

    async def answer(self, name: str, until: int, epochs: int | None) -> None:
        self.answers[(name, until)] = epochs
        self.answered.setdefault((name, until), asyncio.Event()).set()


rung_desk = ray.remote(num_cpus=0, max_restarts=0)(RungDesk)


def task_for(cpus: float, gpus: float):
    """The remote function for one variant's task, and its resource request."""
    return (train_task_gpu if gpus else train_task), {"num_cpus": cpus, "num_gpus": gpus}


def library_versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "ray": ray.__version__,
        "numpy": numpy.__version__,
    }


def _build_export(
    members: list[tuple], splits: data.Splits, stable_archive: bytes | None = None
) -> dict:
    """Build the serving SavedModel from the members' weights and score it.

    The temperature and the `uncertain` signals' constants are fitted first
    (fmnist/training/calibrate.py) and built into the SavedModel; its thresholds are
    chosen on its own validation outputs.

    The SavedModel is loaded back from disk to score the test set, so the confusion
    matrix describes exactly the files that ship. For the quality gate, the same
    SavedModel and the `stable` version are scored on this run's validation split: both
    numbers come from the same images and code, whatever --val-size or --limit the stable
    version was trained with. A Ray task, so the driver never imports TensorFlow; the
    SavedModel comes back as a tar archive, so --export-dir is written where the driver
    runs, a ray:// client included.

    Args:
        members: [(variant, weights, share)]: one member, or an ensemble's.
        splits: the run's data.
        stable_archive: the `stable` version, packed by the driver (any node can run this).

    Returns:
        {"archive", "libraries", "predictions" (test set), "val_accuracy",
        "calibration", "uncertain" (calibrate.describe)} and "stable_val_accuracy" or
        "stable_error" when `stable_archive` is given.
    """
    runtime.skip_optional_imports()
    import tensorflow as tf

    def serve(directory: str):
        return tf.saved_model.load(directory).signatures[export.SIGNATURE]

    def outputs(signature, x) -> dict:
        return {k: v.numpy() for k, v in signature(**{export.INPUT_KEY: tf.constant(x)}).items()}

    def predict(directory: str, x):
        return outputs(serve(directory), x)[export.OUTPUT_KEY].argmax(axis=1).astype("uint8")

    def val_accuracy(directory: str) -> float:
        return float((predict(directory, splits.x_val) == splits.y_val).mean())

    nets = savedmodel.build_nets(members)
    calibrated = calibrate.fit(nets, splits)
    with tempfile.TemporaryDirectory() as tmp:
        savedmodel.save_ensemble(members, Path(tmp), calibrated)
        signature = serve(tmp)
        served = {
            "validation": outputs(signature, splits.x_val),
            "test": outputs(signature, splits.x_test),
        }
        raw = {
            "validation": calibrate.raw_probabilities(nets, splits.x_val),
            "test": calibrate.raw_probabilities(nets, splits.x_test),
        }
        built = {
            "archive": export.pack(Path(tmp)),
            "libraries": library_versions(),
            "predictions": served["test"][export.OUTPUT_KEY].argmax(axis=1).astype("uint8"),
            "val_accuracy": float(
                (served["validation"][export.OUTPUT_KEY].argmax(axis=1) == splits.y_val).mean()
            ),
            **calibrate.describe(calibrated, raw, served, splits),
        }
    if stable_archive is not None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                export.unpack(stable_archive, Path(tmp))
                built["stable_val_accuracy"] = val_accuracy(tmp)
            except Exception as e:  # noqa: BLE001 - recorded; the gate then refuses
                built["stable_error"] = one_line(e)
    return built


export_task = ray.remote(max_retries=3, retry_exceptions=False)(_build_export)
