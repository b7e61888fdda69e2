"""Train one variant: what a Ray task runs, and nothing Ray-specific.

The same code path runs on CPU and GPU; the process is set up first by
fmnist/core/runtime.py (threads, GPU memory growth, the device).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from fmnist.core import internals
from fmnist.core.data import Splits
from fmnist.core.files import write_json_atomic
from fmnist.ops.results import VariantResult
from fmnist.training.variants import Variant

EVAL_BATCH = 1000  # evaluation has no optimizer step: big batches are just faster


class EpochLog:
    """The per-epoch history and the attempt count of one variant, kept in its
    checkpoint directory. A retried task (its process or node was lost) continues both:
    Keras's BackupAndRestore brings back the weights and optimizer, this brings back
    the curve, so the result shows every epoch once and how many attempts it took."""

    def __init__(self, directory: str | None):
        self.path = Path(directory) / "history.json" if directory else None
        saved = json.loads(self.path.read_text()) if self.path and self.path.exists() else {}
        self.epochs: dict[str, dict] = saved.get("epochs", {})
        self.attempts = saved.get("attempts", 0) + 1
        self.resumed_from = len(self.epochs)
        self._save()

    def record(self, epoch: int, logs: dict) -> None:
        self.epochs[str(epoch)] = {k: float(v) for k, v in logs.items()}
        self._save()

    def history(self) -> dict[str, list[float]]:
        rows = [self.epochs[k] for k in sorted(self.epochs, key=int)]
        return {key: [r[key] for r in rows if key in r] for key in (rows[0] if rows else {})}

    def _save(self) -> None:
        if self.path:
            write_json_atomic(
                self.path, {"attempts": self.attempts, "pid": os.getpid(), "epochs": self.epochs}
            )


def epoch_scalars(directory: str):
    """A callback writing TensorBoard event files, laid out as Keras's TensorBoard
    callback lays them out (train/: epoch_loss, epoch_accuracy, epoch_learning_rate;
    validation/: epoch_loss, epoch_accuracy), so `tensorboard --logdir runs/` overlays
    train and validation and compares variants and runs.

    Not keras.callbacks.TensorBoard: it needs the tensorboard package, which TensorFlow
    2.21 no longer installs (the task failed with TBNotInstalledError), and so does
    tf.summary.scalar. tf.summary.write with the scalar plugin's metadata (what
    tensorboard's scalar() writes) is TensorFlow's own."""
    import keras
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(data_class=summary_pb2.DATA_CLASS_SCALAR)
    meta.plugin_data.plugin_name = "scalars"
    writers = {}

    def write(split: str, tag: str, value: float, step: int) -> None:
        if split not in writers:
            writers[split] = tf.summary.create_file_writer(str(Path(directory) / split))
        with writers[split].as_default():
            tf.summary.write(
                f"epoch_{tag}", tf.constant(float(value), tf.float32), step=step, metadata=meta
            )

    class EpochScalars(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            for key in ("loss", "accuracy"):
                if key in logs:
                    write("train", key, logs[key], epoch)
                if f"val_{key}" in logs:
                    write("validation", key, logs[f"val_{key}"], epoch)
            lr = self.model.optimizer.learning_rate  # the schedule's value at this step
            write("train", "learning_rate", float(keras.ops.convert_to_numpy(lr)), epoch)
            for writer in writers.values():
                writer.flush()

        def on_train_end(self, logs=None):
            for writer in writers.values():
                writer.close()

    return EpochScalars()


class Fitted(NamedTuple):
    """What fit_variant returns."""

    result: VariantResult
    weights: list[np.ndarray]
    # The validation split's [N, 10] probabilities, for ensemble selection (the driver's).
    val_probabilities: np.ndarray


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _callbacks(
    variant: Variant,
    epoch_end,
    checkpoint_dir: str | None,
    tensorboard_dir: str | None,
    after_epoch: Callable[[int], None] | None = None,
    keep_backup: bool = False,
) -> list:
    import keras

    callbacks: list = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.LambdaCallback(on_epoch_end=epoch_end),
    ]
    if checkpoint_dir:
        # After the epoch log, so a kill between the two re-runs that epoch, never skips it.
        # Kept after a rung (successive halving): a promotion continues from it.
        backup = str(Path(checkpoint_dir) / "backup")
        callbacks.append(internals.keras_atomic_backup(backup, delete_checkpoint=not keep_backup))
    if tensorboard_dir:
        callbacks.append(epoch_scalars(tensorboard_dir))
    if after_epoch is not None:  # last: the epoch's checkpoint and scalars are written
        callbacks.append(
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: after_epoch(epoch + 1))
        )
    if variant.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=variant.early_stopping,
                restore_best_weights=True,
            )
        )
    return callbacks


def _check_finite(hist: dict) -> None:
    if any(not math.isfinite(v) for v in hist.get("loss", [])):
        raise FloatingPointError(
            f"loss became NaN/inf at epoch {len(hist['loss'])}; "
            f"lower learning_rate or add normalization"
        )


def _evaluate(net, splits: Splits, hist: dict) -> tuple:
    """(val loss, val accuracy, test loss, test accuracy, validation probabilities) of a
    trained net; a NaN or infinite loss in `hist` fails the variant instead."""
    import tensorflow as tf

    _check_finite(hist)
    val_loss, val_acc = net.evaluate(splits.x_val, splits.y_val, batch_size=EVAL_BATCH, verbose=0)
    test_loss, test_acc = net.evaluate(
        splits.x_test, splits.y_test, batch_size=EVAL_BATCH, verbose=0
    )
    # For ensemble selection, which the driver runs on validation predictions only.
    val_probs = tf.nn.softmax(net.predict(splits.x_val, batch_size=EVAL_BATCH, verbose=0))
    return val_loss, val_acc, test_loss, test_acc, val_probs.numpy()


def fit_variant(
    variant: Variant,
    splits: Splits,
    *,
    device: str = "/CPU:0",
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint_dir: str | None = None,
    tensorboard_dir: str | None = None,
    after_epoch: Callable[[int], None] | None = None,
    chunk: int | None = None,
    jit: bool = True,
    until_epoch: int | None = None,
    teacher: tuple[Variant, list[np.ndarray]] | None = None,
    go_on: Callable[[int, VariantResult], int | None] | None = None,
) -> Fitted:
    """Train, then evaluate on validation and test.

    With `until_epoch` below the variant's epochs (a rung of successive halving), train
    only up to that epoch, keep the checkpoint for a promotion to continue from, and
    return a `stopped` result (the last epoch's validation accuracy; no test figures,
    weights or probabilities: those are None). With `go_on`, `go_on(until_epoch,
    stopped result)` is asked first; it returns the epoch to go on to (a promotion of this
    variant: the model trained so far, its compiled step and its data pipeline are
    kept, so the promotion pays none of a new task's set-up) or None to return it.
    The result of each stretch counts only its own epochs and seconds.

    With `checkpoint_dir`, the state after every epoch is kept there and a second call
    (a Ray retry after the first process died) resumes from the last finished epoch.
    With `tensorboard_dir`, per-epoch scalars go there as TensorBoard event files
    (epoch_scalars). `after_epoch(n)` runs once epoch n's checkpoint and scalars are
    written (a bucket's commit: fmnist/training/checkpoints.py). A student (its
    `teacher` set) needs `teacher`: the teacher's Variant and trained weights; its
    logits are computed in each training step on the student's augmented batch."""
    import keras
    import tensorflow as tf

    from fmnist.training import model as model_mod

    keras.utils.set_random_seed(variant.seed)
    # XLA's CPU convolution gradients were far slower than TensorFlow's own kernels
    # (docs/performance.md, "Distillation"): a teacher trains uncompiled; its forward
    # pass inside a student's compiled step is fine.
    jit = jit and not variant.conv
    log = EpochLog(checkpoint_dir)
    started, started_at = time.monotonic(), utc_now()
    ds, steps, k = model_mod.training_dataset(
        splits.x_train, splits.y_train, variant, chunk or model_mod.DEFAULT_CHUNK
    )
    batches_per_epoch = steps * k  # optimizer steps per epoch (for the LR schedule)

    ends: list[float] = []  # when each epoch of this attempt ended

    def epoch_end(epoch, logs):
        ends.append(time.monotonic())
        log.record(epoch + 1, logs or {})
        if on_epoch is not None:
            on_epoch(epoch + 1, dict(logs or {}))

    until = min(until_epoch or variant.epochs, variant.epochs)

    with tf.device(device), warnings.catch_warnings():
        # Keras warns that shuffle=True is ignored for a tf.data input; ours shuffles.
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        net = model_mod.build(variant, jit=jit)
        if variant.teacher:
            if teacher is None:
                raise ValueError(
                    f"{variant.name}: distilled from {variant.teacher!r}, no teacher given"
                )
            teacher_net = model_mod.build(teacher[0], jit=jit)
            teacher_net.set_weights(teacher[1])
            net.distil_from(teacher_net, variant.distill_temperature, variant.distill_alpha)
        model_mod.compile_for_training(net, variant, batches_per_epoch, jit=jit)
        while True:  # one stretch per rung this process trains to
            rung = until < variant.epochs
            net.fit(
                ds,
                epochs=until,
                steps_per_epoch=steps,
                validation_data=(splits.x_val, splits.y_val),
                validation_batch_size=EVAL_BATCH,
                # Afresh each stretch: the TensorBoard writers close at the end of fit.
                callbacks=_callbacks(
                    variant, epoch_end, checkpoint_dir, tensorboard_dir, after_epoch, rung
                ),
                verbose=0,
            )
            stretch = dict(  # this stretch's timing, for its result
                started=started,
                started_at=started_at,
                fitted_at=time.monotonic(),
                steps=batches_per_epoch,
            )
            hist = log.history()  # every epoch, this attempt's and any earlier one's
            if not rung:
                val_loss, val_acc, test_loss, test_acc, val_probs = _evaluate(net, splits, hist)
                break
            _check_finite(hist)
            val_loss, val_acc = hist["val_loss"][-1], hist["val_accuracy"][-1]
            result = _result(variant, log, hist, net, device, ends, val_loss, val_acc, **stretch)
            further = go_on(until, result) if go_on is not None else None
            if further is None:
                return Fitted(result, None, None)
            until = min(further, variant.epochs)
            started, started_at, ends[:] = time.monotonic(), utc_now(), []
            log.resumed_from = result.epochs_run  # the next stretch counts its own epochs

    result = _result(
        variant, log, hist, net, device, ends, val_loss, val_acc, test_loss, test_acc, **stretch
    )
    return Fitted(result, net.get_weights(), val_probs.astype("float32"))


def _result(
    variant: Variant,
    log: EpochLog,
    hist: dict,
    net,
    device: str,
    ends: list[float],
    val_loss: float,
    val_acc: float,
    test_loss: float | None = None,
    test_acc: float | None = None,
    *,
    started: float,
    started_at: str,
    fitted_at: float,
    steps: int,
) -> VariantResult:
    """A stretch's result: `stopped` at a rung (no test figures) or `ok`. `ends`: when
    each of its epochs ended; `started` and `fitted_at`: when its training began and
    ended (time.monotonic), `started_at` the UTC time it began; `steps`: optimizer steps an
    epoch."""
    train_seconds = fitted_at - started
    val_curve = hist.get("val_accuracy", [])
    trained = len(val_curve) - log.resumed_from  # epochs of this stretch
    return VariantResult(
        name=variant.name,
        config=variant.to_dict(),
        status="stopped" if test_acc is None else "ok",
        val_accuracy=float(val_acc),
        val_loss=float(val_loss),
        test_accuracy=None if test_acc is None else float(test_acc),
        test_loss=None if test_loss is None else float(test_loss),
        epochs_run=len(val_curve),
        optimizer_steps=int(net.optimizer.iterations.numpy()),
        attempts=log.attempts,
        resumed_from_epoch=log.resumed_from,
        best_epoch=int(np.argmax(val_curve)) + 1 if val_curve else None,
        history=hist,
        train_seconds=round(train_seconds, 2),
        # This stretch's epochs; the first also holds the XLA compile and data set-up.
        epoch_seconds=[round(b - a, 2) for a, b in zip([started, *ends], ends)],
        started_at=started_at,
        finished_at=utc_now(),
        samples_per_second=round(trained * steps * variant.batch_size / train_seconds, 1),
        host=socket.gethostname(),
        device=device,
    )
