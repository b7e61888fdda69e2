"""Train one variant: what a Ray task runs, and nothing Ray-specific.

The same code path runs on CPU and GPU. Before TensorFlow's runtime starts, the task
pins TensorFlow's thread pools to the CPUs it asked Ray for (otherwise every task
spawns one thread per core and they fight), and turns on GPU memory growth (otherwise
the first task on a GPU grabs all of its memory and a second, fractional task fails).
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
from typing import Callable

import numpy as np

from fmnist.data import Splits
from fmnist.files import write_json_atomic
from fmnist.variants import Variant

EVAL_BATCH = 1000  # evaluation has no optimizer step: big batches are just faster


def threads_for(cpus: float) -> int:
    """TensorFlow threads for a task holding `cpus` CPUs (fractions round, at least 1)."""
    return max(1, math.floor(cpus + 0.5))


def pick_device(gpus: list[str]) -> str:
    """The device for the model: the first GPU TensorFlow sees, else the CPU.

    Ray sets CUDA_VISIBLE_DEVICES to the GPU(s) it assigned the task, so TensorFlow
    numbers them from 0: the first visible GPU *is* the one Ray gave us.
    `gpus` are TensorFlow's physical GPU device names, e.g.
    ['/physical_device:GPU:0']."""
    if not gpus:
        return "/CPU:0"
    return "/GPU:" + gpus[0].rsplit(":", 1)[-1]


def skip_optional_imports() -> None:
    """For a process that only trains: mark pandas and matplotlib as absent before
    TensorFlow is imported. Keras imports both whenever they are installed (pandas
    comes with ray[data], matplotlib draws our plots), only for pandas inputs and its
    plotting helpers, and treats them as optional. Measured: TensorFlow's import takes
    2.05 s of CPU instead of 2.80, per task process. Never call it in a process that
    plots or runs Ray Data."""
    import sys

    if "tensorflow" not in sys.modules:
        for name in ("pandas", "matplotlib"):
            sys.modules.setdefault(name, None)  # None: `import name` raises ImportError


def batch_scheduling() -> bool:
    """Put this thread, and the threads it starts from now on (TensorFlow's pools),
    under Linux's SCHED_BATCH policy: CPU-bound and non-interactive, so the kernel
    preempts it less eagerly when another thread wakes. Tasks that share cores (with
    Ray's processes, or four on two with --cpus-per-worker 0.5) then switch less often
    and keep their caches warm: with four on two, the default sweep's training phase
    took 45.3 s instead of 47.8 s (means of four alternating runs). An ordinary,
    unprivileged policy; Ray's own threads, started earlier, keep theirs. Returns
    False where the platform has no such policy."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        return True
    except (AttributeError, OSError):
        return False


def configure_tensorflow(cpus: float, threads: int | None = None) -> str:
    """Threads and GPU memory growth; returns the device to place the model on.
    `threads` overrides the thread count derived from the task's CPUs.

    Both settings only take before TensorFlow initializes its runtime. A Ray worker
    process that is reused for a second task (same resource shape) already has them,
    so 'already initialized' is fine here."""
    import tensorflow as tf

    n = threads or threads_for(cpus)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    return pick_device([g.name for g in gpus])


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
            write_json_atomic(self.path, {"attempts": self.attempts, "pid": os.getpid(),
                                          "epochs": self.epochs})


def atomic_backup(backup_dir: str):
    """Keras's BackupAndRestore with every checkpoint written aside and renamed into
    place. Keras writes `latest.weights.h5` in place, so a process killed mid-save (the
    very case the callback exists for) left a truncated file that failed the retry.
    Weights are renamed before the epoch counter: a kill between the two repeats an
    epoch, never skips one. (Uses the callback's private paths; Keras is pinned.)"""
    import keras

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            weights_tmp = self._weights_path.replace(".weights.h5", ".tmp.weights.h5")
            self.model.save_weights(weights_tmp, overwrite=True)
            meta_tmp = self._training_metadata_path + ".tmp"
            with open(meta_tmp, "w") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
            os.replace(weights_tmp, self._weights_path)
            os.replace(meta_tmp, self._training_metadata_path)

    return AtomicBackupAndRestore(backup_dir)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def fit_variant(variant: Variant, splits: Splits, *, device: str = "/CPU:0",
                on_epoch: Callable[[int, dict], None] | None = None,
                checkpoint_dir: str | None = None,
                chunk: int | None = None, jit: bool = True) -> tuple[dict, list[np.ndarray]]:
    """Train, then evaluate on validation and test. Returns (result, weights).

    With `checkpoint_dir`, the state after every epoch is kept there and a second call
    (a Ray retry after the first process died) resumes from the last finished epoch."""
    import keras
    import tensorflow as tf

    from fmnist import model as model_mod

    keras.utils.set_random_seed(variant.seed)
    log = EpochLog(checkpoint_dir)
    started, started_at = time.monotonic(), utc_now()
    ds, steps, k = model_mod.training_dataset(
        splits.x_train, splits.y_train, variant, chunk or model_mod.DEFAULT_CHUNK)
    batches_per_epoch = steps * k  # optimizer steps per epoch (for the LR schedule)

    ends: list[float] = []  # when each epoch of this attempt ended

    def epoch_end(epoch, logs):
        ends.append(time.monotonic())
        log.record(epoch + 1, logs or {})
        if on_epoch is not None:
            on_epoch(epoch + 1, dict(logs or {}))

    callbacks: list = [keras.callbacks.TerminateOnNaN(),
                       keras.callbacks.LambdaCallback(on_epoch_end=epoch_end)]
    if checkpoint_dir:
        # After the epoch log, so a kill between the two re-runs that epoch, never skips it.
        callbacks.append(atomic_backup(str(Path(checkpoint_dir) / "backup")))
    if variant.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=variant.early_stopping,
            restore_best_weights=True))

    with tf.device(device), warnings.catch_warnings():
        # Keras warns that shuffle=True is ignored for a tf.data input; ours shuffles.
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        net = model_mod.build(variant, jit=jit)
        model_mod.compile_for_training(net, variant, batches_per_epoch, jit=jit)
        net.fit(ds, epochs=variant.epochs, steps_per_epoch=steps,
                validation_data=(splits.x_val, splits.y_val),
                validation_batch_size=EVAL_BATCH, callbacks=callbacks, verbose=0)
        train_seconds = time.monotonic() - started
        hist = log.history()  # every epoch, this attempt's and any earlier one's
        if any(not math.isfinite(v) for v in hist.get("loss", [])):
            raise FloatingPointError(
                f"loss became NaN/inf at epoch {len(hist['loss'])}; "
                f"lower learning_rate or add normalization")
        val_loss, val_acc = net.evaluate(splits.x_val, splits.y_val,
                                         batch_size=EVAL_BATCH, verbose=0)
        test_loss, test_acc = net.evaluate(splits.x_test, splits.y_test,
                                           batch_size=EVAL_BATCH, verbose=0)

    val_curve = hist.get("val_accuracy", [])
    result = {
        "name": variant.name,
        "config": variant.to_dict(),
        "status": "ok",
        "val_accuracy": float(val_acc), "val_loss": float(val_loss),
        "test_accuracy": float(test_acc), "test_loss": float(test_loss),
        "epochs_run": len(val_curve),
        "optimizer_steps": int(net.optimizer.iterations.numpy()),
        "attempts": log.attempts,
        "resumed_from_epoch": log.resumed_from,
        "best_epoch": int(np.argmax(val_curve)) + 1 if val_curve else None,
        "history": hist,
        "train_seconds": round(train_seconds, 2),
        # This attempt's epochs; the first also holds the XLA compile and data set-up.
        "epoch_seconds": [round(b - a, 2) for a, b in zip([started, *ends], ends)],
        "started_at": started_at, "finished_at": utc_now(),
        "samples_per_second": round((len(val_curve) - log.resumed_from) * batches_per_epoch
                                    * variant.batch_size / train_seconds, 1),
        "host": socket.gethostname(),
        "device": device,
    }
    return result, net.get_weights()
